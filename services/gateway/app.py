"""The HTTP API front: one address that forwards each path to the service that owns it.

Services keep their own data and their own routes; the gateway holds no state. It merges
the services' OpenAPI documents so `/docs` shows the whole API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from shared.settings import Settings

HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-encoding",
}


def routes(settings: Settings) -> dict[str, str]:
    """Path prefix -> base URL of the owning service."""
    return {
        "/v1/requests": settings.gardien_intake_url,
        "/v1/deadlines": settings.gardien_deadlines_url,
        "/v1/erasure": settings.gardien_erasure_url,
        "/v1/audit": settings.gardien_audit_url,
        "/v1/webhooks": settings.gardien_audit_url,
    }


def create_gateway(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The gateway app; it forwards /v1/* and reports the services' readiness."""
    table = routes(settings)
    services = {
        "intake": settings.gardien_intake_url,
        "deadlines": settings.gardien_deadlines_url,
        "erasure": settings.gardien_erasure_url,
        "audit": settings.gardien_audit_url,
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=30.0, transport=transport) as client:
            app.state.client = client
            yield

    app = FastAPI(
        title="Gardien API",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "api"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        checks = {}
        for name, base in services.items():
            try:
                checks[name] = (
                    await request.app.state.client.get(f"{base}/readyz")
                ).status_code == 200
            except httpx.HTTPError:
                checks[name] = False
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(await _merged_openapi(request.app.state.client, services))

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(openapi_url="/openapi.json", title="Gardien API")

    @app.api_route(
        "/v1/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def forward(request: Request, path: str) -> Response:
        target = next(
            (
                base
                for prefix, base in table.items()
                if request.url.path == prefix or request.url.path.startswith(prefix + "/")
            ),
            None,
        )
        if target is None:
            return JSONResponse({"detail": f"no route for {request.url.path}"}, status_code=404)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        # Forward the path and query exactly as received (still percent-encoded): decoded,
        # a control character or non-ASCII byte would make an invalid upstream URL.
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string", b"")
        url = f"{target}{raw_path.decode('latin-1')}" + (
            f"?{query.decode('latin-1')}" if query else ""
        )
        try:
            upstream = await request.app.state.client.request(
                request.method, url, content=await request.body(), headers=headers
            )
        except httpx.InvalidURL:
            return JSONResponse({"detail": "the request URL is not valid"}, status_code=400)
        except httpx.HTTPError:
            return JSONResponse({"detail": "the owning service is unreachable"}, status_code=503)
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
        return Response(upstream.content, status_code=upstream.status_code, headers=out)

    return app


async def _merged_openapi(client: httpx.AsyncClient, services: dict[str, str]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Gardien API", "version": "0.1.0"},
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
    }
    for base in services.values():
        try:
            doc = (await client.get(f"{base}/openapi.json")).json()
        except (httpx.HTTPError, ValueError):
            continue
        merged["paths"].update(doc.get("paths", {}))
        for part in ("schemas", "securitySchemes"):
            merged["components"][part].update(doc.get("components", {}).get(part, {}))
    return merged
