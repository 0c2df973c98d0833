"""The erasure service: cases fanned out to connected systems, tracked to a provable end."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.erasure import handlers, holdcases
from services.erasure.actions import router as actions
from services.erasure.connector import HttpConnector
from services.erasure.http import router
from services.erasure.register import record_register
from services.erasure.register_http import router as register_router
from services.erasure.registry import Registry, check_register, load_registry, register_links
from services.erasure.repository import INDEXES
from services.erasure.settings import ErasureSettings
from services.erasure.sweeper import run_sweeper
from services.erasure.usecases import Erasure
from shared.clock import Clock, SystemClock
from shared.mongo import IndexPlan
from shared.rules import Policy, default_policy, load_policy
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings


def create_app(
    settings: Settings,
    exporter: SpanExporter | None = None,
    *,
    erasure_settings: ErasureSettings | None = None,
    registry: Registry | None = None,
    policy: Policy | None = None,
    clock: Clock | None = None,
    tick_seconds: float | None = None,
) -> FastAPI:
    """The erasure app: subscribers, case and register routes, start-up relay, the sweeper.

    A registry loaded from its file is checked against the policy's register; an injected
    one (tests) is taken as given.
    """
    own = erasure_settings or ErasureSettings()
    policy = policy or active_policy(settings)
    if registry is None:
        registry = load_registry(own.registry_path)
        check_register(registry, policy.records)  # a category without an entry stops here
    systems = registry
    register = policy.register_document(register_links(systems))
    now = (clock or SystemClock()).now
    connector = HttpConnector(
        own.signing_secret.get_secret_value().encode(), own.http_timeout_seconds
    )
    uses: dict[str, Erasure] = {}

    def wire(runtime: Runtime) -> None:
        uses["erasure"] = Erasure(runtime, systems, own, clock or SystemClock(), connector)
        handlers.register(runtime, uses["erasure"])

    async def relay_pending(_: Runtime) -> None:
        await uses["erasure"].relay_pending()

    async def audit_register(runtime: Runtime) -> None:
        await record_register(runtime, register, now())

    async def start_sweeper(runtime: Runtime) -> None:
        tick = tick_seconds or own.tick_seconds
        runtime.tasks.append(asyncio.create_task(run_sweeper(uses["erasure"], tick)))

    indexes = IndexPlan(dict(INDEXES.indexes))
    for collection, models in holdcases.INDEXES.items():
        indexes.indexes[collection] = [*indexes.indexes.get(collection, []), *models]
    spec = ServiceSpec(
        "erasure",
        wire,
        indexes,
        [router, register_router, actions],
        after_start=[relay_pending, audit_register, start_sweeper],
    )
    app = create_service_app(spec, settings, exporter)
    app.state.erasure = uses["erasure"]
    app.state.register = register
    return app


def active_policy(settings: Settings) -> Policy:
    """The policy profile named by the settings, or the built-in default."""
    path = settings.gardien_policy_file
    return load_policy(path) if path is not None else default_policy()
