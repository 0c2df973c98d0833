"""The deadlines service: durable legal clocks and their scheduler."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.deadlines import handlers
from services.deadlines.actions import router as actions
from services.deadlines.http import router
from services.deadlines.repository import INDEXES, MongoTimers
from services.deadlines.scheduler import Scheduler
from services.deadlines.settings import DeadlinesSettings
from services.deadlines.usecases import Deadlines
from shared.clock import Clock, SystemClock
from shared.rules import Policy, default_policy, load_policy
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings


def create_app(
    settings: Settings,
    exporter: SpanExporter | None = None,
    *,
    clock: Clock | None = None,
    policy: Policy | None = None,
    tick_interval: float | None = None,
    lease_seconds: float | None = None,
    run_scheduler: bool = True,
) -> FastAPI:
    """The deadlines app: subscribers, the list route and a background scheduler.

    Tests inject a ``FakeClock`` and may drive ``app.state.scheduler.tick()`` themselves
    (``run_scheduler=False``) so time moves without sleeps.
    """
    own = DeadlinesSettings()
    active = policy or (
        load_policy(settings.gardien_policy_file) if settings.gardien_policy_file else None
    )
    uses: dict[str, Deadlines] = {}
    parts: dict[str, Scheduler] = {}

    def wire(runtime: Runtime) -> None:
        uses["deadlines"] = Deadlines(runtime, active or default_policy())
        handlers.register(runtime, uses["deadlines"])
        parts["scheduler"] = Scheduler(
            lambda: MongoTimers(runtime.db),
            lambda: runtime.broker,
            clock or SystemClock(),
            lease_seconds=lease_seconds or own.lease_seconds,
            policy=uses["deadlines"].policy,
        )

    async def start(runtime: Runtime) -> None:
        await uses["deadlines"].relay_stale(grace_ms=0)
        if run_scheduler:
            task = parts["scheduler"].run(tick_interval or own.tick_seconds)
            runtime.tasks.append(asyncio.create_task(task, name="deadlines-scheduler"))

    spec = ServiceSpec("deadlines", wire, INDEXES, [router, actions], after_start=[start])
    app = create_service_app(spec, settings, exporter)
    app.state.deadlines = uses["deadlines"]
    app.state.scheduler = parts["scheduler"]
    return app
