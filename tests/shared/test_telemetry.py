"""Spans of HTTP requests carry no query string (a subject search holds an e-mail)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.telemetry import instrument_fastapi


async def test_query_strings_never_reach_span_attributes() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI()

    @app.get("/v1/audit/events")
    async def events(subject: str = "") -> dict[str, str]:
        return {}

    instrument_fastapi(app, provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        reply = await client.get("/v1/audit/events", params={"subject": "alice@example.org"})
    assert reply.status_code == 200
    spans = exporter.get_finished_spans()
    assert spans
    text = repr([dict(s.attributes or {}) for s in spans])
    assert "alice" not in text
    server = next(s for s in spans if (s.attributes or {}).get("http.route"))
    # The stable HTTP conventions (OTEL_SEMCONV_STABILITY_OPT_IN=http): url.path, no query.
    attributes = server.attributes or {}
    assert attributes.get("url.path") == "/v1/audit/events"
    assert not attributes.get("url.query")
