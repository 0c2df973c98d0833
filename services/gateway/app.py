"""The HTTP API front: one address that forwards each path to the service that owns it.

Services keep their own data and their own routes; the gateway holds no state. It merges
the services' OpenAPI documents so `/docs` shows the whole API.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from services.gateway import console
from shared.health import Check, Readiness
from shared.metrics import PROMETHEUS_CONTENT_TYPE, Metrics
from shared.settings import Settings
from shared.telemetry import instrument_fastapi, setup_tracing

READY_TIMEOUT = 0.8  # seconds per service probe
QUIET_PATHS = {"/healthz", "/readyz", "/metrics"}  # probes would drown the access log
access = logging.getLogger("gardien.access")

HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-encoding",
}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def services(settings: Settings) -> dict[str, str]:
    """Service name -> base URL."""
    return {
        "intake": settings.gardien_intake_url,
        "deadlines": settings.gardien_deadlines_url,
        "erasure": settings.gardien_erasure_url,
        "audit": settings.gardien_audit_url,
    }


def routes(settings: Settings) -> dict[str, str]:
    """Path prefix -> base URL of the owning service."""
    return {
        "/v1/requests": settings.gardien_intake_url,
        "/v1/deadlines": settings.gardien_deadlines_url,
        "/v1/breaches": settings.gardien_deadlines_url,
        "/v1/holds": settings.gardien_deadlines_url,
        "/v1/processors": settings.gardien_deadlines_url,
        "/v1/erasure": settings.gardien_erasure_url,
        "/v1/register": settings.gardien_erasure_url,  # the register of processing (Art 30)
        "/v1/packages": settings.gardien_erasure_url,  # a data subject's package link
        "/v1/audit": settings.gardien_audit_url,
        "/v1/webhooks": settings.gardien_audit_url,
    }


def rules(settings: Settings) -> list[tuple[re.Pattern[str], str]]:
    """Paths inside one service's prefix that another owns, matched whole before prefixes."""
    return [
        # The access package is the erasure service's, under intake's /v1/requests.
        (re.compile(r"/v1/requests/[^/]+/package(?:/link)?"), settings.gardien_erasure_url),
    ]


def create_app(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The gateway app; it forwards /v1/* and reports the services' readiness."""
    app = FastAPI(
        title="Gardien API",
        version="0.1.0",
        lifespan=_with_client(transport),
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services(settings)
    app.state.routes = routes(settings)
    app.state.rules = rules(settings)
    app.state.metrics = Metrics("api", settings)
    app.state.readiness = Readiness(
        {name: _ready_check(app, base) for name, base in app.state.services.items()},
        timeout=READY_TIMEOUT,
    )
    for path, endpoint in (
        ("/healthz", healthz),
        ("/readyz", readyz),
        ("/metrics", metrics),
        ("/openapi.json", openapi),
        ("/docs", docs),
    ):
        app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)
    app.add_api_route("/v1/{path:path}", forward, methods=METHODS, include_in_schema=False)
    console.mount(app, settings)
    app.middleware("http")(access_log)
    instrument_fastapi(app, setup_tracing("api", settings), app.state.metrics.provider)
    return app


def _with_client(
    transport: httpx.AsyncBaseTransport | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan holding one HTTP client to the services for the app's whole life."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=30.0, transport=transport) as client:
            app.state.client = client
            try:
                yield
            finally:
                app.state.metrics.shutdown()

    return lifespan


async def healthz() -> dict[str, str]:
    return {"status": "ok", "service": "api"}


def _ready_check(app: FastAPI, base: str) -> Check:
    async def check() -> bool:
        client: httpx.AsyncClient = app.state.client
        return (await client.get(f"{base}/readyz", timeout=READY_TIMEOUT)).status_code == 200

    return check


async def readyz(request: Request) -> JSONResponse:
    """200 when every service answers its own /readyz with 200, else 503 and which ones.

    The services are asked together, each bounded, so the answer comes within a second.
    """
    checks = await request.app.state.readiness.state()
    ready = all(checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    """The gateway's own figures (HTTP requests by route and status, process)."""
    body = request.app.state.metrics.exposition()
    return Response(body, media_type=PROMETHEUS_CONTENT_TYPE)


async def access_log(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """One line per request: method, path without its query string, status, duration."""
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        if request.url.path not in QUIET_PATHS:
            access.info(
                "%s %s %d %.1fms",
                request.method,
                request.url.path,
                status,
                (time.perf_counter() - started) * 1000,
            )


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(await merged_openapi(request.app.state.client, request.app.state.services))


async def docs() -> Response:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="Gardien API")


async def forward(request: Request, path: str) -> Response:
    """Send the request to the service owning its path; stream the answer back."""
    target = owner(request.app.state.routes, request.url.path, request.app.state.rules)
    if target is None:
        return JSONResponse({"detail": f"no route for {request.url.path}"}, status_code=404)
    # Raw bytes: a header value outside ASCII (legal as opaque bytes) must not break the forward.
    headers = [
        (k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in HOP_HEADERS
    ]
    client: httpx.AsyncClient = request.app.state.client
    try:
        outgoing = client.build_request(
            request.method,
            target + raw_target(request),
            content=await request.body(),
            headers=headers,
        )
        upstream = await client.send(outgoing, stream=True)
    except httpx.InvalidURL:
        return JSONResponse({"detail": "the request URL is not valid"}, status_code=400)
    except httpx.HTTPError:
        return JSONResponse({"detail": "the owning service is unreachable"}, status_code=503)
    out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
    if "content-length" in upstream.headers and "content-encoding" not in upstream.headers:
        out["content-length"] = upstream.headers["content-length"]  # bytes pass unchanged
    # Streamed (an access package is large): the answer is never held whole here.
    return StreamingResponse(
        upstream.aiter_bytes(),
        status_code=upstream.status_code,
        headers=out,
        background=BackgroundTask(upstream.aclose),
    )


def owner(
    table: dict[str, str], path: str, exact: list[tuple[re.Pattern[str], str]] | None = None
) -> str | None:
    """Base URL of the service owning ``path``: a whole-path rule, else its prefix's owner."""
    for pattern, base in exact or []:
        if pattern.fullmatch(path):
            return base
    return next(
        (base for prefix, base in table.items() if path == prefix or path.startswith(prefix + "/")),
        None,
    )


def raw_target(request: Request) -> str:
    """The path and query exactly as received (still percent-encoded).

    Decoded, a control character or non-ASCII byte would make an invalid upstream URL.
    """
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    return raw_path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")


async def merged_openapi(client: httpx.AsyncClient, bases: dict[str, str]) -> dict[str, Any]:
    """One OpenAPI document with the paths and components of every service that answers."""
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Gardien API", "version": "0.1.0"},
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
    }
    for base in bases.values():
        try:
            doc = (await client.get(f"{base}/openapi.json")).json()
        except (httpx.HTTPError, ValueError):
            continue
        merged["paths"].update(doc.get("paths", {}))
        for part in ("schemas", "securitySchemes"):
            merged["components"][part].update(doc.get("components", {}).get(part, {}))
    return merged
