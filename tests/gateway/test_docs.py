"""`/docs` of the gateway and of each service works offline: every asset comes from the app."""

from __future__ import annotations

import re
from importlib import import_module

import httpx
import pytest
from fastapi import FastAPI

from services.gateway.app import create_app
from shared.settings import Settings

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
URL_IN_SCRIPT = re.compile(r"""(?:url|openapi_url)["']?\s*:\s*["']([^"']+)["']""")


async def _check_docs(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert not re.search(r"https?://", page.text), "the page names an outside address"
        assets = ASSET.findall(page.text)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
        for asset in assets:
            got = await client.get(asset)
            assert got.status_code == 200 and got.content, asset
        loaded = URL_IN_SCRIPT.search(page.text)  # the document Swagger UI loads
        assert loaded is not None and loaded.group(1) == "/openapi.json"


async def test_gateway_docs_are_served_from_local_assets() -> None:
    await _check_docs(create_app(Settings()))


@pytest.mark.parametrize("service", ["intake", "deadlines", "erasure", "audit"])
async def test_service_docs_are_served_from_local_assets(service: str) -> None:
    await _check_docs(import_module(f"services.{service}.app").create_app(Settings()))
