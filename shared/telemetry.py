"""Tracing setup: one tracer provider per process, OTLP export when an endpoint is set."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.metrics import MeterProvider

    from shared.settings import Settings

log = logging.getLogger(__name__)


def setup_tracing(
    service: str, settings: Settings, exporter: SpanExporter | None = None
) -> TracerProvider:
    """Tracer provider for ``service``; exports to ``exporter`` or to the OTLP endpoint."""
    name = settings.otel_service_name or f"gardien-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    if exporter is None and settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        exporter = OTLPSpanExporter(endpoint=endpoint)
        log.info("exporting traces over OTLP/HTTP")
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


# Attributes that may hold the query string; a subject search puts an e-mail there.
URL_ATTRIBUTES = ("http.url", "url.full", "http.target", "url.query")


def _without_query(span: Span, scope: dict[str, Any]) -> None:
    """Server request hook: rewrite URL attributes without their query string."""
    if not span.is_recording():
        return
    for name in URL_ATTRIBUTES:
        value = getattr(span, "attributes", {}).get(name)
        if isinstance(value, str) and "?" in value:
            span.set_attribute(name, value.split("?", 1)[0])
    if "url.query" in getattr(span, "attributes", {}):
        span.set_attribute("url.query", "")


def instrument_fastapi(
    app: FastAPI, provider: TracerProvider, meters: MeterProvider | None = None
) -> None:
    """Trace and time every HTTP request of ``app`` (probes excluded), without query strings."""
    # The stable HTTP conventions: http.server.request.duration in seconds, by http.route.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        meter_provider=meters,
        excluded_urls="healthz,readyz,metrics",
        server_request_hook=_without_query,
    )
