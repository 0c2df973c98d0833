"""The register through `gardien up`: the gateway forwards it, the audit trail holds it."""

from __future__ import annotations

import csv
import io
import time

import httpx
import pytest

from tests.e2e.conftest import System

pytestmark = pytest.mark.e2e


def test_register_is_served_through_the_gateway_and_audited(system: System) -> None:
    got = httpx.get(f"{system.api}/v1/register", headers=system.headers(), timeout=10)
    assert got.status_code == 200, got.text
    register = got.json()
    assert {"customers", "prospecting", "accounting"} <= {a["id"] for a in register["activities"]}
    rows = httpx.get(
        f"{system.api}/v1/register", params={"format": "csv"}, headers=system.headers(), timeout=10
    )
    assert len(list(csv.DictReader(io.StringIO(rows.text)))) == len(register["activities"])
    assert httpx.get(f"{system.api}/v1/register", timeout=10).status_code == 401
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        items = httpx.get(
            f"{system.api}/v1/audit/events",
            params={"type": "gardien.register.changed", "limit": 500},
            headers=system.headers(),
            timeout=5,
        ).json()["items"]
        if any(i["data"]["register_hash"] == register["hash"] for i in items):
            return
        time.sleep(0.2)
    raise AssertionError("the register's hash was not audited")
