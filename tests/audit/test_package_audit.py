"""The access package on the embedded stack: built, downloaded over HTTP, expired, audited.

The erasure service runs in-process (its lifespan: MongoDB, broker, sweeper); the package is
built through ``app.state.packages`` from uploads in its blob store, as the collection case
does; the audit service chains the package events, which carry no personal data.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.audit.app import create_app as audit_app
from services.audit.settings import AuditSettings
from services.erasure.app import create_app as erasure_app
from services.erasure.package_store import Packages
from services.erasure.packages import PackageOrder, SystemAnswer
from services.erasure.settings import ErasureSettings
from shared.clock import FakeClock
from shared.settings import Settings
from tests.support import api_key, running, wait_for

pytestmark = pytest.mark.integration
START = datetime(2027, 3, 6, 9, tzinfo=UTC)
RECORDS = [{"customer_id": "C-77", "email": "zoe@example.org", "address": {"city": "Metz"}}]


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def order(request_id: str, kid: str) -> PackageOrder:
    answers = [
        SystemAnswer(
            "crm",
            "answered",
            START,
            None,
            f"upload:{request_id}:crm",
            "application/json",
            ["profile"],
        ),
        SystemAnswer(
            "vendor", "failed", START, "escalated after 3 attempts", None, None, ["behaviour"]
        ),
    ]
    return PackageOrder(request_id, "access", kid, answers, START)


async def test_a_package_is_delivered_once_then_copied_then_expired_all_audited(
    settings: Settings, audit_settings: AuditSettings
) -> None:
    rid, kid = f"R-{uuid.uuid4().hex[:8]}", f"case:acc:{uuid.uuid4().hex[:8]}"
    clock = FakeClock(START)
    own = ErasureSettings(package_keep_days=7, package_link_seconds=600, tick_seconds=0.05)
    reader, other = api_key(settings, "packages:read"), api_key(settings, "audit:read")
    app = erasure_app(settings, erasure_settings=own, clock=clock)
    async with running(audit_app(settings, audit=audit_settings)) as audit, running(app) as erasure:
        packages: Packages = app.state.packages
        path = f"/v1/requests/{rid}/package"
        assert (await erasure.get(path)).status_code == 401
        assert (await erasure.get(path, headers=other)).status_code == 403
        missing = await erasure.get(path, headers=reader)
        assert missing.status_code == 404 and missing.json()["code"] == "no_package"
        await packages.expect([rid], clock.now())
        early = await erasure.get(path, headers=reader)
        assert early.status_code == 409 and early.json()["code"] == "package_not_built"
        assert early.headers["content-type"] == "application/problem+json"

        blob = json.dumps(RECORDS).encode()
        await packages.sources.blobs.write(f"upload:{rid}:crm", kid, body(blob), now=clock.now())
        await packages.build(order(rid, kid), clock.now())
        got = await erasure.get(path, headers=reader)
        assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
        assert got.headers["x-gardien-chargeable"] == "false"
        archive = zipfile.ZipFile(io.BytesIO(got.content))
        assert json.loads(archive.read("crm/records.json")) == RECORDS
        manifest = json.loads(archive.read("manifest.json"))
        assert [s["status"] for s in manifest["systems"]] == ["answered", "failed"]
        again = await erasure.get(path, headers=reader)
        assert again.headers["x-gardien-chargeable"] == "true" and again.content == got.content

        link = await erasure.post(f"{path}/link", headers=reader)
        assert link.status_code == 201, link.text
        url = link.json()["url"]
        assert (await erasure.get(url)).status_code == 200
        used = await erasure.get(url)
        assert used.status_code == 410 and used.json()["code"] == "package_gone"
        assert (await erasure.get("/v1/packages/forged.token")).status_code == 404

        clock.advance(timedelta(days=7, seconds=1))
        await wait_for(lambda: _deleted(packages, rid), timeout=15)  # the sweeper's expiry
        gone = await erasure.get(path, headers=reader)
        assert gone.status_code == 410 and gone.json()["code"] == "package_gone"
        assert await packages.sources.blobs.info(f"upload:{rid}:crm") is None

        trail = await wait_for(lambda: _trail(audit, other, rid), timeout=30)
        types = sorted(i["type"] for i in trail)
        assert types == [
            "gardien.access.package.built",
            "gardien.access.package.deleted",
            "gardien.access.package.delivered",
            "gardien.access.package.downloaded",
            "gardien.access.package.downloaded",
            "gardien.access.package.link_issued",
        ]
        assert len(trail) == 6, trail
        text = json.dumps(trail)
        assert "zoe" not in text and "C-77" not in text and "Metz" not in text


async def _deleted(packages: Packages, rid: str) -> bool:
    state = await packages.repo.get(rid)
    return state is not None and state.state == "deleted"


async def _trail(audit: Any, headers: dict[str, str], rid: str) -> list[dict[str, Any]] | None:
    found = []
    for kind in ("built", "delivered", "downloaded", "link_issued", "deleted"):
        params = {"type": f"gardien.access.package.{kind}", "limit": 200}
        reply = await audit.get("/v1/audit/events", params=params, headers=headers)
        found += [i for i in reply.json()["items"] if i["data"].get("request_id") == rid]
    kinds = {i["type"].rsplit(".", 1)[1] for i in found}
    # All six records (two downloads): the audit may chain them in any order and at any time.
    return found if len(kinds) == 5 and len(found) >= 6 else None
