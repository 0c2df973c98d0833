"""The erasure service: erasure fan-out and acknowledgement tracking."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.erasure import handlers
from shared.service import ServiceSpec, create_service_app
from shared.settings import Settings


def create_app(settings: Settings, exporter: SpanExporter | None = None) -> FastAPI:
    """The erasure app: its subscribers and health routes."""
    return create_service_app(ServiceSpec("erasure", handlers.register), settings, exporter)
