"""The gateway forwards each path to its owner as received, reports readiness, merges OpenAPI."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from services.gateway.app import create_app
from shared.settings import Settings

SERVICES = ("intake", "deadlines", "erasure", "audit")
SETTINGS = Settings(**{f"gardien_{name}_url": f"http://{name}" for name in SERVICES})  # type: ignore[arg-type]


def upstream() -> FastAPI:
    """Every service at once: it answers with who it is (the Host header) and what it got."""
    app = FastAPI(openapi_url=None)

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        return Response(status_code=503 if request.headers["host"] == "erasure" else 200)

    @app.get("/openapi.json")
    async def openapi(request: Request) -> dict[str, Any]:
        name = request.headers["host"]
        return {
            "paths": {f"/v1/{name}": {"get": {}}},
            "components": {"schemas": {name.title(): {"type": "object"}}},
        }

    @app.api_route("/v1/{rest:path}", methods=["GET", "POST", "DELETE"])
    async def echo(request: Request, rest: str) -> Response:
        body = {
            "service": request.headers["host"],
            "method": request.method,
            "raw_path": request.scope["raw_path"].decode(),
            "query": request.url.query,
            "body": (await request.body()).decode(),
            "x_api_key": request.headers.get("x-api-key"),
        }
        return Response(
            json.dumps(body),
            status_code=201 if request.method == "POST" else 200,
            headers={"content-type": "application/json", "x-upstream": "yes"},
        )

    return app


class Services(httpx.AsyncBaseTransport):
    """Routes to ``upstream()``; the hosts in ``down`` refuse connections."""

    def __init__(
        self, down: frozenset[str] = frozenset(), hang: frozenset[str] = frozenset()
    ) -> None:
        self.app = httpx.ASGITransport(app=upstream())
        self.down, self.hang = down, hang

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host in self.down:
            raise httpx.ConnectError("refused", request=request)
        if request.url.host in self.hang:
            await asyncio.sleep(3600)
        return await self.app.handle_async_request(request)


async def call(
    path: str,
    method: str = "GET",
    down: frozenset[str] = frozenset(),
    hang: frozenset[str] = frozenset(),
    **kw: Any,
) -> httpx.Response:
    gateway = create_app(SETTINGS, transport=Services(down, hang))
    async with gateway.router.lifespan_context(gateway):
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.request(method, path, **kw)


async def test_odd_paths_are_forwarded_as_received() -> None:
    reply = await call("/v1/webhooks/%10%C3%9C?x=%20y")
    assert reply.status_code == 200, reply.text
    assert reply.json()["raw_path"] == "/v1/webhooks/%10%C3%9C"
    assert reply.json()["query"] == "x=%20y"


async def test_each_prefix_goes_to_its_owner() -> None:
    owners = {
        "/v1/breaches/b1/authority-notification": "deadlines",
        "/v1/holds": "deadlines",
        "/v1/processors/p1/deletion-certificate": "deadlines",
        "/v1/requests": "intake",
        "/v1/requests/r1/status": "intake",
        "/v1/deadlines/d1": "deadlines",
        "/v1/erasure/cases": "erasure",
        "/v1/audit/subjects/x": "audit",
        "/v1/webhooks": "audit",
        "/v1/requests/r1/package": "erasure",  # the access package: a whole-path rule
        "/v1/requests/r1/package/link": "erasure",
        "/v1/requests/r1/packaged": "intake",
        "/v1/requests/r1/package/other": "intake",
        "/v1/requests/package": "intake",
        "/v1/packages/tok.en": "erasure",
    }
    for path, owner in owners.items():
        assert (await call(path)).json()["service"] == owner, path


async def test_a_large_answer_is_streamed_through_with_its_length() -> None:
    chunks = [bytes([i]) * 65536 for i in range(64)]  # 4 MiB

    class Big(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            async def body() -> Any:
                for chunk in chunks:
                    yield chunk

            headers = {"content-type": "application/zip", "content-length": str(65536 * 64)}
            return httpx.Response(200, headers=headers, stream=_Stream(body()))

    gateway, sent = create_app(SETTINGS, transport=Big()), []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/requests/r1/package",
        "raw_path": b"/v1/requests/r1/package",
        "query_string": b"",
        "headers": [(b"host", b"gw")],
        "client": ("127.0.0.1", 1),
        "server": ("gw", 80),
    }

    done, asked = asyncio.Event(), []

    async def receive() -> dict[str, Any]:
        asked.append(1)
        if len(asked) == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    async with gateway.router.lifespan_context(gateway):
        await gateway(scope, receive, send)  # type: ignore[arg-type]
    start = sent[0]
    assert start["status"] == 200
    assert (b"content-length", str(65536 * 64).encode()) in start["headers"]
    bodies = [m["body"] for m in sent[1:] if m["type"] == "http.response.body"]
    assert b"".join(bodies) == b"".join(chunks)
    assert len([b for b in bodies if b]) > 1  # handed on piece by piece, never held whole


class _Stream(httpx.AsyncByteStream):
    def __init__(self, source: Any) -> None:
        self.source = source

    async def __aiter__(self) -> Any:
        async for chunk in self.source:
            yield chunk


async def test_method_body_and_headers_are_forwarded_and_the_status_kept() -> None:
    reply = await call("/v1/requests", "POST", content=b'{"a": 1}', headers={"X-API-Key": "k"})
    assert reply.status_code == 201
    got = reply.json()
    assert (got["method"], got["body"], got["x_api_key"]) == ("POST", '{"a": 1}', "k")
    assert reply.headers["x-upstream"] == "yes"


async def test_a_header_outside_ascii_is_forwarded_as_bytes() -> None:
    # Found by schemathesis on the actions: an Idempotency-Key of non-ASCII bytes made a 500.
    raw = "clé-ü".encode()
    reply = await call("/v1/requests", "POST", headers={"Idempotency-Key": raw, "X-API-Key": "k"})
    assert reply.status_code == 201, reply.text


async def test_unknown_prefix_is_404_and_a_prefix_is_not_a_word_start() -> None:
    assert (await call("/v1/nothing-here")).status_code == 404
    assert (await call("/v1/requestsX")).status_code == 404


async def test_an_unreachable_owner_is_503() -> None:
    reply = await call("/v1/audit/x", down=frozenset({"audit"}))
    assert reply.status_code == 503
    assert reply.json() == {"detail": "the owning service is unreachable"}


async def test_readyz_reports_each_service() -> None:
    reply = await call("/readyz", down=frozenset({"audit"}))
    assert reply.status_code == 503
    checks = {"intake": True, "deadlines": True, "erasure": False, "audit": False}
    assert reply.json() == {"ready": False, "checks": checks}
    assert (await call("/healthz")).json() == {"status": "ok", "service": "api"}


async def test_openapi_merges_the_reachable_services() -> None:
    doc = (await call("/openapi.json", down=frozenset({"deadlines"}))).json()
    assert set(doc["paths"]) == {"/v1/intake", "/v1/erasure", "/v1/audit"}
    assert set(doc["components"]["schemas"]) == {"Intake", "Erasure", "Audit"}
    assert doc["info"]["title"] == "Gardien API"
    assert (await call("/docs")).status_code == 200


async def test_readyz_answers_promptly_when_a_service_hangs() -> None:
    # The probe's own bound answers; 5 s here only keeps a regression from hanging the suite.
    reply = await asyncio.wait_for(call("/readyz", hang=frozenset({"deadlines"})), 5)
    assert reply.status_code == 503
    assert reply.json()["checks"]["deadlines"] is False


async def test_each_request_is_logged_without_its_query_string(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="gardien.access"):
        await call("/v1/audit/events?subject=alice@example.com")
        await call("/healthz")
    lines = [r.getMessage() for r in caplog.records if r.name == "gardien.access"]
    assert len(lines) == 1
    method, path, status, took = lines[0].split()
    assert (method, path, status) == ("GET", "/v1/audit/events", "200")
    assert took.endswith("ms")


async def test_gateway_metrics_are_prometheus_text() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    await call("/v1/requests")
    reply = await call("/metrics")
    assert reply.status_code == 200
    names = {f.name for f in text_string_to_metric_families(reply.text)}
    assert {"process_cpu_time_seconds", "process_memory_usage_bytes"} <= names
