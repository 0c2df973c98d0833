"""The register of processing at the erasure service: registry pointers and the API."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from services.erasure.app import create_app
from services.erasure.register_page import CSV_COLUMNS
from services.erasure.registry import (
    Registry,
    RegistryError,
    check_register,
    load_registry,
    register_links,
)
from services.erasure.settings import ErasureSettings
from services.gateway.app import owner, routes
from shared.rules.policy import default_policy, load_policy
from shared.settings import Settings
from tests.support import REPO, api_key

EXAMPLE_REGISTRY = REPO / "examples" / "connected_systems" / "registry.yaml"
SEEDS = ["serenicity", "senef", "seipra-score", "msi"]


def registry(categories: dict[str, dict[str, str]]) -> Registry:
    return Registry.model_validate(
        {"systems": [{"id": "crm", "categories": categories, "identifiers": ["email"]}]}
    )


def test_example_registry_points_at_every_seed_register() -> None:
    systems = load_registry(EXAMPLE_REGISTRY)
    seeds = [load_policy(REPO / f"examples/policies/{n}.yaml") for n in SEEDS]
    for policy in [default_policy(), *seeds]:
        check_register(systems, policy.records)
        doc = policy.register_document(register_links(systems))
        linked = {s.system for a in doc.activities for s in a.systems}
        assert linked == {s.id for s in systems.systems}, policy.name


@pytest.mark.parametrize(
    ("categories", "fragment"),
    [
        ({"profile": {}}, "connected system 'crm' category 'profile' has no register entry"),
        (
            {"profile": {"activity": "clients"}},
            "connected system 'crm' category 'profile' points at unknown register activity"
            " 'clients'",
        ),
        ({}, "connected system 'crm' has no category, so no register entry"),
    ],
)
def test_system_category_without_entry_is_one_clear_line(
    categories: dict[str, dict[str, str]], fragment: str
) -> None:
    with pytest.raises(RegistryError) as info:
        check_register(registry(categories), default_policy().records)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_service_refuses_to_start_with_an_unpointed_category(tmp_path: Path) -> None:
    raw = yaml.safe_load(EXAMPLE_REGISTRY.read_text())
    del raw["systems"][0]["categories"]["profile"]["activity"]
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(raw))
    own = ErasureSettings(registry_path=path)
    settings = Settings(gardien_api_keys_file=tmp_path / "keys.json")
    with pytest.raises(RegistryError, match="category 'profile' has no register entry"):
        create_app(settings, erasure_settings=own)


def test_gateway_forwards_the_register_to_erasure() -> None:
    settings = Settings()
    assert owner(routes(settings), "/v1/register") == settings.gardien_erasure_url


@pytest.fixture
def http_settings(tmp_path: Path) -> Settings:
    policy = REPO / "examples" / "policies" / "serenicity.yaml"
    return Settings(gardien_api_keys_file=tmp_path / "keys.json", gardien_policy_file=policy)


@pytest.fixture
async def http(http_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The erasure app's routes without its lifespan (the register needs no broker)."""
    app = create_app(http_settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://erasure") as client:
        yield client


async def test_register_needs_an_audit_read_key(
    http: httpx.AsyncClient, http_settings: Settings
) -> None:
    missing = await http.get("/v1/register")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "missing API key (X-API-Key)",
        "instance": "/v1/register",
    }
    wrong = await http.get("/v1/register", headers={"X-API-Key": "gdn_nope_x"})
    assert wrong.status_code == 401
    weak = await http.get("/v1/register", headers=api_key(http_settings, "intake:read"))
    assert weak.status_code == 403
    assert weak.json()["status"] == 403
    assert weak.json()["detail"] == "this key lacks scope audit:read"
    bad = await http.get(
        "/v1/register", params={"format": "pdf"}, headers=api_key(http_settings, "audit:read")
    )
    assert bad.status_code == 422


async def test_register_as_json(http: httpx.AsyncClient, http_settings: Settings) -> None:
    r = await http.get("/v1/register", headers=api_key(http_settings, "audit:read"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["policy"] == "serenicity"
    assert body["controller"]["organisation"] == "Serenicity"
    assert re.fullmatch(r"[0-9a-f]{64}", body["hash"])
    customers = next(a for a in body["activities"] if a["id"] == "customers")
    assert {line["category"] for line in customers["retention"]} == {
        "customer",
        "contract",
        "e_contract",
    }
    assert {s["system"] for s in customers["systems"]} == {"crm", "billing", "partner-insurer"}


async def test_register_as_csv(http: httpx.AsyncClient, http_settings: Settings) -> None:
    r = await http.get(
        "/v1/register", params={"format": "csv"}, headers=api_key(http_settings, "audit:read")
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [row["activity_id"] for row in rows] == [
        a.id for a in load_policy(REPO / "examples/policies/serenicity.yaml").records.activities
    ]
    accounting = next(row for row in rows if row["activity_id"] == "accounting")
    assert "120 months from financial_year_close" in accounting["retention"]
    assert "billing: invoices" in accounting["connected_systems"]
    assert accounting["transfers_outside_eu"] == "none"
    assert all(row["purposes"] and row["security_measures"] for row in rows)


async def test_register_as_printable_page(http: httpx.AsyncClient, http_settings: Settings) -> None:
    r = await http.get(
        "/v1/register", params={"format": "html"}, headers=api_key(http_settings, "audit:read")
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert page.startswith("<!DOCTYPE html>")
    assert "@media print" in page and "page-break-before" in page
    assert "Record sheet 1: Customer management" in page
    assert "Transfers outside the EU (Art 30(1)(e))" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # no internet asset
    assert "<script" not in page


async def test_register_is_documented_in_openapi(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    op = doc["paths"]["/v1/register"]["get"]
    assert set(op["responses"]) >= {"200", "401", "403"}
    assert set(op["responses"]["200"]["content"]) >= {"application/json", "text/csv", "text/html"}
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    assert op["responses"]["403"]["content"] == {"application/problem+json": problem}
    assert "RegisterDocument" in doc["components"]["schemas"]
