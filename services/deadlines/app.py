"""The deadlines service: durable legal clocks and their scheduler.

``bootstrap`` wires the use cases to their repositories; ``create_app`` builds the MongoDB
repositories in the lifespan (or takes the ones a test passes) and starts the scheduler.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.deadlines import gauges, handlers, retention, usecases
from services.deadlines.actions import router as actions
from services.deadlines.http import router
from services.deadlines.repository import (
    INDEXES,
    Repositories,
    mongo_repositories,
)
from services.deadlines.scheduler import Scheduler
from services.deadlines.settings import DeadlinesSettings
from services.deadlines.usecases import Deadlines, Tracer
from shared.clock import Clock, SystemClock
from shared.pseudonyms import Pseudonymiser
from shared.rules import Policy, default_policy, load_policy
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings

PLANS = {**usecases.PLANS, **retention.PLANS}


def bootstrap(
    repos: Repositories,
    policy: Policy,
    clock: Clock,
    pseudonyms: Pseudonymiser,
    span: Tracer,
) -> Deadlines:
    """The use cases over ``repos`` (MongoDB in the service, in-memory fakes in tests)."""
    return Deadlines(repos, policy, clock, pseudonyms, span, PLANS, retention.prepare_batch)


def create_app(
    settings: Settings,
    exporter: SpanExporter | None = None,
    *,
    clock: Clock | None = None,
    policy: Policy | None = None,
    tick_interval: float | None = None,
    lease_seconds: float | None = None,
    run_scheduler: bool = True,
    repositories: Repositories | None = None,
) -> FastAPI:
    """The deadlines app: subscribers, the list route and a background scheduler.

    Tests inject a ``FakeClock`` and may drive ``app.state.scheduler.tick()`` themselves
    (``run_scheduler=False``) so time moves without sleeps; ``app.state.deadlines``,
    ``.scheduler`` and ``.repositories`` exist once the app has started.
    """
    own = DeadlinesSettings()
    active = policy or (
        load_policy(settings.gardien_policy_file) if settings.gardien_policy_file else None
    )
    ticks = clock or SystemClock()
    parts: dict[str, Deadlines] = {}

    def wire(runtime: Runtime) -> None:
        handlers.register(runtime.consumer, lambda: parts["deadlines"], PLANS)

    async def start(runtime: Runtime) -> None:
        repos = repositories or mongo_repositories(runtime.db, lambda: runtime.broker)
        uses = bootstrap(repos, active or default_policy(), ticks, runtime.pseudonyms, runtime.span)
        scheduler = Scheduler(
            repos, ticks, lease_seconds=lease_seconds or own.lease_seconds, policy=uses.policy,
            batch=own.claim_batch, workers=own.claim_workers, span=runtime.span,
        )  # fmt: skip
        parts["deadlines"] = uses
        app.state.deadlines, app.state.scheduler, app.state.repositories = uses, scheduler, repos
        await uses.relay_stale(grace_ms=0)
        if run_scheduler:
            task = scheduler.run(tick_interval or own.tick_seconds)
            runtime.tasks.append(asyncio.create_task(task, name="deadlines-scheduler"))

    spec = ServiceSpec("deadlines", wire, INDEXES, [router, actions], after_start=[start])
    app = create_service_app(spec, settings, exporter)
    gauges.register(app, ticks)
    return app
