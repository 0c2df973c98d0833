"""The deadlines service: durable legal clocks."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.deadlines import handlers
from shared.service import ServiceSpec, create_service_app
from shared.settings import Settings


def create_app(settings: Settings, exporter: SpanExporter | None = None) -> FastAPI:
    """The deadlines app: its subscribers and health routes."""
    return create_service_app(ServiceSpec("deadlines", handlers.register), settings, exporter)
