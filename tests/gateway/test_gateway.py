"""The gateway forwards paths as received and never answers 500 for an odd one."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Request

from services.gateway.app import create_gateway
from shared.settings import Settings


def upstream() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/{rest:path}")
    async def echo(request: Request, rest: str) -> dict[str, str]:
        return {"raw_path": request.scope["raw_path"].decode(), "query": request.url.query}

    return app


async def call(path: str) -> httpx.Response:
    gateway = create_gateway(Settings(), transport=httpx.ASGITransport(app=upstream()))
    async with gateway.router.lifespan_context(gateway):
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.get(path)


async def test_odd_paths_are_forwarded_as_received() -> None:
    reply = await call("/v1/webhooks/%10%C3%9C?x=%20y")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"raw_path": "/v1/webhooks/%10%C3%9C", "query": "x=%20y"}


async def test_unknown_prefix_is_404() -> None:
    assert (await call("/v1/nothing-here")).status_code == 404
