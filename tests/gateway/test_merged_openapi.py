"""The gateway's merged OpenAPI document of the real services is valid OpenAPI 3.1."""

from __future__ import annotations

from importlib import import_module
from typing import Any

import httpx
import schemathesis

from services.gateway.app import merged_openapi
from shared.settings import Settings

SERVICES = ("intake", "deadlines", "erasure", "audit")


class ByHost(httpx.AsyncBaseTransport):
    """Each service's own app (no lifespan: only its /openapi.json is asked for)."""

    def __init__(self) -> None:
        settings = Settings()
        self.apps = {
            name: httpx.ASGITransport(
                app=import_module(f"services.{name}.app").create_app(settings)
            )
            for name in SERVICES
        }

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.apps[request.url.host].handle_async_request(request)


async def _merged() -> dict[str, Any]:
    async with httpx.AsyncClient(transport=ByHost()) as client:
        return await merged_openapi(client, {name: f"http://{name}" for name in SERVICES})


async def test_merged_document_is_valid_and_every_operation_loads() -> None:
    doc = await _merged()
    schema = schemathesis.openapi.from_dict(doc)
    schema.validate()  # against the OpenAPI 3.1 meta-schema (jsonschema-rs)
    loaded = list(schema.get_all_operations())
    assert loaded and all(op.ok() for op in loaded), [op for op in loaded if not op.ok()]
    assert len(loaded) == sum(len(item) for item in doc["paths"].values())


async def test_every_operation_declares_the_gateways_own_errors() -> None:
    doc = await _merged()
    assert {"ApiKey", "Bearer"} <= set(doc["components"]["securitySchemes"])
    assert "Problem" in doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert {"400", "503"} <= set(op["responses"]), f"{method.upper()} {path}"
