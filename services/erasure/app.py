"""The erasure service: cases fanned out to connected systems, tracked to a provable end."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.erasure import handlers, holdcases
from services.erasure.actions import router as actions
from services.erasure.connector import HttpConnector
from services.erasure.http import router
from services.erasure.registry import Registry, load_registry
from services.erasure.repository import INDEXES
from services.erasure.settings import ErasureSettings
from services.erasure.sweeper import run_sweeper
from services.erasure.usecases import Erasure
from shared.clock import Clock, SystemClock
from shared.mongo import IndexPlan
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings


def create_app(
    settings: Settings,
    exporter: SpanExporter | None = None,
    *,
    erasure_settings: ErasureSettings | None = None,
    registry: Registry | None = None,
    clock: Clock | None = None,
    tick_seconds: float | None = None,
) -> FastAPI:
    """The erasure app: subscribers, case routes, start-up relay and the sweeper."""
    own = erasure_settings or ErasureSettings()
    systems = registry or load_registry(own.registry_path)
    connector = HttpConnector(
        own.signing_secret.get_secret_value().encode(), own.http_timeout_seconds
    )
    uses: dict[str, Erasure] = {}

    def wire(runtime: Runtime) -> None:
        uses["erasure"] = Erasure(runtime, systems, own, clock or SystemClock(), connector)
        handlers.register(runtime, uses["erasure"])

    async def relay_pending(_: Runtime) -> None:
        await uses["erasure"].relay_pending()

    async def start_sweeper(runtime: Runtime) -> None:
        tick = tick_seconds or own.tick_seconds
        runtime.tasks.append(asyncio.create_task(run_sweeper(uses["erasure"], tick)))

    indexes = IndexPlan(dict(INDEXES.indexes))
    for collection, models in holdcases.INDEXES.items():
        indexes.indexes[collection] = [*indexes.indexes.get(collection, []), *models]
    spec = ServiceSpec(
        "erasure", wire, indexes, [router, actions], after_start=[relay_pending, start_sweeper]
    )
    app = create_service_app(spec, settings, exporter)
    app.state.erasure = uses["erasure"]
    return app
