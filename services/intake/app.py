"""The intake service: records data-subject requests, runs their lifecycle and decides.

``bootstrap`` is the one door: the app builds the MongoDB repositories in its lifespan;
tests pass in-memory ones (``services.intake.memory``) through ``repositories``.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.intake import gauges, handlers
from services.intake.actions import router as actions
from services.intake.http import router
from services.intake.repository import (
    INDEXES,
    MongoRequests,
    MongoSubjectHistory,
    MongoSubjectKeys,
)
from services.intake.usecases import Intake, Repositories
from shared import rules
from shared.clock import Clock, SystemClock
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings
from shared.started import Started

RepositoryFactory = Callable[[Runtime], Repositories]


def active_policy(settings: Settings) -> rules.Policy:
    """The policy profile named by the settings, or the built-in default."""
    path = settings.gardien_policy_file
    return rules.load_policy(path) if path is not None else rules.default_policy()


def mongo_repositories(runtime: Runtime) -> Repositories:
    """Intake's MongoDB repositories on the running service's database."""
    db = runtime.db
    return Repositories(
        MongoRequests(db, runtime.broker), MongoSubjectHistory(db), MongoSubjectKeys(db)
    )


def bootstrap(runtime: Runtime, repos: Repositories, policy: rules.Policy, clock: Clock) -> Intake:
    """The intake use cases wired to ``repos`` and the runtime's pseudonyms and tracer."""
    return Intake(repos, runtime.pseudonyms, policy, clock, runtime.span)


def create_app(
    settings: Settings,
    exporter: SpanExporter | None = None,
    clock: Clock | None = None,
    repositories: RepositoryFactory | None = None,
) -> FastAPI:
    """The intake app: subscribers, routes, and a start-up relay of pending events."""
    policy, started = active_policy(settings), Started[Intake]()

    def wire(runtime: Runtime) -> None:
        handlers.register(runtime, started.get)

    async def start(runtime: Runtime) -> None:
        # Retired: subject hashes now use the deployment's pseudonym key (shared/pseudonyms).
        repos = (repositories or mongo_repositories)(runtime)
        await repos.keys.retire_secret("subject-hash")
        intake = bootstrap(runtime, repos, policy, clock or SystemClock())
        app.state.intake = intake
        await intake.relay_pending()
        started.set(intake)

    spec = ServiceSpec("intake", wire, INDEXES, [router, actions], after_start=[start])
    app = create_service_app(spec, settings, exporter)
    gauges.register(app)
    return app
