"""The intake service: validates and records data-subject requests."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.intake import handlers
from services.intake.http import router
from services.intake.repository import INDEXES
from services.intake.usecases import Intake
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings


def create_app(settings: Settings, exporter: SpanExporter | None = None) -> FastAPI:
    """The intake app: subscribers, routes, and a start-up relay of pending events."""
    uses: dict[str, Intake] = {}

    def wire(runtime: Runtime) -> None:
        uses["intake"] = Intake(runtime)
        handlers.register(runtime, uses["intake"])

    async def relay_pending(_: Runtime) -> None:
        await uses["intake"].relay_pending()

    spec = ServiceSpec("intake", wire, INDEXES, [router], after_start=[relay_pending])
    app = create_service_app(spec, settings, exporter)
    app.state.intake = uses["intake"]
    return app
