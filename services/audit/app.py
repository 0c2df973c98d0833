"""The audit service: the hash-chained trail of every event, its API, signed webhooks.

``bootstrap`` is the one door: the app builds the MongoDB repositories in its lifespan;
tests pass in-memory ones (``services.audit.memory``) through ``repositories`` or call
``attach`` on an app whose lifespan they do not run.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.audit import gauges, handlers
from services.audit.checkpoints import Checkpointer
from services.audit.dispatcher import Dispatcher
from services.audit.http import router
from services.audit.mongo import INDEXES, mongo_repositories
from services.audit.repository import Repositories
from services.audit.settings import AuditSettings
from services.audit.usecases import Auditor
from services.audit.webhook_http import router as webhook_router
from shared.clock import Clock, SystemClock
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings
from shared.started import Started

RepositoryFactory = Callable[[Runtime], Repositories]


@dataclass
class Options:
    """What the parts are built from, besides the runtime and the repositories."""

    audit: AuditSettings
    clock: Clock
    rng: random.Random | None
    transport: httpx.AsyncBaseTransport | None


@dataclass
class Parts:
    auditor: Auditor
    checkpointer: Checkpointer
    dispatcher: Dispatcher


def bootstrap(runtime: Runtime, repos: Repositories, options: Options) -> Parts:
    """The audit use cases on ``repos`` (MongoDB in the service, fakes in tests)."""
    auditor = Auditor(repos, runtime.pseudonyms, runtime.span, options.clock, options.audit)
    checkpointer = Checkpointer(repos, options.audit, options.clock)
    dispatcher = Dispatcher(
        repos, options.audit, options.clock, auditor.record_local, options.rng, options.transport
    )
    auditor.after_append += [dispatcher.enqueue, checkpointer.on_append]
    return Parts(auditor, checkpointer, dispatcher)


def attach(app: FastAPI, repos: Repositories) -> Parts:
    """Build the parts on ``repos`` and hand them to the routes and subscribers."""
    parts = bootstrap(app.state.runtime, repos, app.state.audit_options)
    app.state.auditor, app.state.checkpointer = parts.auditor, parts.checkpointer
    app.state.dispatcher = parts.dispatcher
    app.state.audit_started.set(parts.auditor)
    return parts


def create_app(
    settings: Settings,
    exporter: SpanExporter | None = None,
    *,
    audit: AuditSettings | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    repositories: RepositoryFactory | None = None,
) -> FastAPI:
    """The audit app: raw subscribers per topic, query routes, checkpoints and webhooks."""
    audit, started = audit or AuditSettings(), Started[Auditor]()

    async def start(runtime: Runtime) -> None:
        repos = (repositories or (lambda rt: mongo_repositories(rt.db)))(runtime)
        # Retired: subject references now use the deployment's pseudonym key (shared/pseudonyms).
        await repos.keys.drop_secret("subject-hmac")
        parts = attach(app, repos)
        runtime.tasks.append(
            asyncio.create_task(parts.checkpointer.run(), name="audit-checkpoints")
        )
        runtime.tasks.append(asyncio.create_task(parts.dispatcher.run(), name="audit-webhooks"))

    wire = lambda runtime: handlers.register(runtime, started.get)  # noqa: E731
    spec = ServiceSpec("audit", wire, INDEXES, [router, webhook_router], after_start=[start])
    app = create_service_app(spec, settings, exporter)
    app.state.audit_settings, app.state.audit_started = audit, started
    app.state.audit_options = Options(audit, clock or SystemClock(), rng, transport)
    gauges.register(app)
    return app
