"""The audit service: the hash-chained trail of every event, its API, signed webhooks."""

from __future__ import annotations

import asyncio
import random

import httpx
from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.audit import gauges, handlers
from services.audit.checkpoints import Checkpointer
from services.audit.dispatcher import Dispatcher
from services.audit.http import router
from services.audit.repository import INDEXES
from services.audit.settings import AuditSettings
from services.audit.usecases import Auditor
from services.audit.webhook_http import router as webhook_router
from shared.clock import Clock, SystemClock
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings


def create_app(
    settings: Settings,
    exporter: SpanExporter | None = None,
    *,
    audit: AuditSettings | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The audit app: raw subscribers per topic, query routes, checkpoints and webhooks."""
    audit = audit or AuditSettings()
    clock = clock or SystemClock()
    parts: dict[str, object] = {}

    def wire(runtime: Runtime) -> None:
        auditor = Auditor(runtime, clock, audit)
        checkpointer = Checkpointer(lambda: auditor.store, audit, clock)
        dispatcher = Dispatcher(
            lambda: auditor.store, audit, clock, auditor.record_local, rng, transport
        )
        auditor.after_append += [dispatcher.enqueue, checkpointer.on_append]
        handlers.register(runtime, auditor)
        parts.update(auditor=auditor, checkpointer=checkpointer, dispatcher=dispatcher)

    async def start_background(runtime: Runtime) -> None:
        checkpointer, dispatcher = parts["checkpointer"], parts["dispatcher"]
        assert isinstance(checkpointer, Checkpointer)
        assert isinstance(dispatcher, Dispatcher)
        # Retired: subject references now use the deployment's pseudonym key (shared/pseudonyms).
        await runtime.db["vault"].delete_one({"_id": "subject-hmac"})
        runtime.tasks.append(asyncio.create_task(checkpointer.run(), name="audit-checkpoints"))
        runtime.tasks.append(asyncio.create_task(dispatcher.run(), name="audit-webhooks"))

    spec = ServiceSpec("audit", wire, INDEXES, [router, webhook_router], [start_background])
    app = create_service_app(spec, settings, exporter)
    app.state.audit_settings = audit
    for name, part in parts.items():
        setattr(app.state, name, part)
    gauges.register(app)
    return app
