"""The audit service: the hash-chained trail of every event, and its query API."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.audit import handlers
from services.audit.http import router
from services.audit.repository import INDEXES
from services.audit.usecases import Auditor
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings


def create_app(settings: Settings, exporter: SpanExporter | None = None) -> FastAPI:
    """The audit app: a raw subscriber per topic and the query routes."""
    uses: dict[str, Auditor] = {}

    def wire(runtime: Runtime) -> None:
        uses["auditor"] = Auditor(runtime)
        handlers.register(runtime, uses["auditor"])

    spec = ServiceSpec("audit", wire, INDEXES, [router])
    app = create_service_app(spec, settings, exporter)
    app.state.auditor = uses["auditor"]
    return app
