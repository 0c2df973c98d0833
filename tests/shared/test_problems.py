"""Every error is RFC 9457 problem details; the OpenAPI documents say so, with both schemes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import import_module
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.auth import KeyStore
from shared.settings import Settings

SERVICES = ("intake", "deadlines", "erasure", "audit")
# A data subject's link, a connected system's upload: the signed token is the credential.
OPEN = {"GET /v1/packages/{token}", "PUT /v1/uploads/{command_id}"}
PROBLEM = {"type", "title", "status", "detail", "instance"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(gardien_api_keys_file=tmp_path / "keys.json")  # type: ignore[call-arg]


@pytest.fixture
async def audit(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The audit app's routes without its lifespan (the errors below come before any I/O)."""
    app = import_module("services.audit.app").create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
        yield client


def _is_problem(reply: httpx.Response, status: int, path: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = reply.json()
    assert set(body) >= PROBLEM, body
    assert body["status"] == status and body["instance"] == path and body["type"] == "about:blank"
    return body


async def test_unknown_route_and_method_are_problems(audit: httpx.AsyncClient) -> None:
    _is_problem(await audit.get("/v1/audit/nowhere/at/all"), 404, "/v1/audit/nowhere/at/all")
    # GET and POST /v1/audit/checkpoints are two routes: Allow names both, not the first only.
    reply = await audit.delete("/v1/audit/checkpoints")
    _is_problem(reply, 405, "/v1/audit/checkpoints")
    assert set(reply.headers["allow"].split(", ")) >= {"GET", "POST"}


async def test_auth_errors_are_problems_and_bearer_works(
    audit: httpx.AsyncClient, settings: Settings
) -> None:
    body = _is_problem(await audit.get("/v1/audit/verify"), 401, "/v1/audit/verify")
    assert body["detail"] == "missing API key (X-API-Key)"
    key = KeyStore(settings.gardien_api_keys_file).create("reader", ["intake:read"])
    weak = await audit.get("/v1/audit/verify", headers={"Authorization": f"Bearer {key}"})
    assert "audit:read" in _is_problem(weak, 403, "/v1/audit/verify")["detail"]


async def test_validation_errors_list_each_field_without_its_value(
    audit: httpx.AsyncClient, settings: Settings
) -> None:
    key = KeyStore(settings.gardien_api_keys_file).create("reader", ["audit:read"])
    reply = await audit.get(
        "/v1/audit/events",
        params={"limit": "lots", "from": "someone@example.com"},
        headers={"X-API-Key": key},
    )
    body = _is_problem(reply, 422, "/v1/audit/events")
    assert {tuple(e["loc"]) for e in body["errors"]} == {("query", "limit"), ("query", "from")}
    assert "someone@example.com" not in reply.text  # the value sent may be personal data


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_answer_is_declared_as_a_problem(service: str, settings: Settings) -> None:
    doc = import_module(f"services.{service}.app").create_app(settings).openapi()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["ApiKey"]["description"],
    }
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            if where in OPEN:
                assert "security" not in op and "422" in op["responses"], where
            else:
                assert op["security"] == [{"ApiKey": []}, {"Bearer": []}], where
                assert {"401", "403", "422"} <= set(op["responses"]), where
            for code, answer in op["responses"].items():
                if int(code) >= 400:
                    assert list(answer["content"]) == ["application/problem+json"], where
                    schema = answer["content"]["application/problem+json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Problem"}, where


def test_exports_declare_their_media_types(settings: Settings) -> None:
    def ok(service: str, path: str) -> set[str]:
        doc = import_module(f"services.{service}.app").create_app(settings).openapi()
        return set(doc["paths"][path]["get"]["responses"]["200"]["content"])

    assert ok("intake", "/v1/requests/export.csv") == {"text/csv"}
    assert ok("audit", "/v1/audit/export") == {"text/csv", "application/x-ndjson"}
    assert ok("erasure", "/v1/register") == {"application/json", "text/csv", "text/html"}
