"""The Packages use case on fakes: build once, deliver, further copies, links, expiry."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from services.erasure.assembly import Sources
from services.erasure.package_links import LinkRefused
from services.erasure.package_repo import MemoryPackages
from services.erasure.package_store import (
    PackageGone,
    PackageMissing,
    PackageNotReady,
    Packages,
)
from services.erasure.packages import PackageOrder
from services.erasure.settings import ErasureSettings
from shared.blobs import MemoryBlobs, MemoryKeys
from shared.rules import default_policy
from tests.erasure.fakes import FakeBroker
from tests.erasure.test_packages import CRM, KID, NOW, RECEIVED, REGISTRY, answer, pieces

SETTINGS = ErasureSettings(package_keep_days=30, package_link_seconds=3600)


def make() -> tuple[Packages, FakeBroker, MemoryBlobs, MemoryKeys]:
    keys, broker = MemoryKeys(), FakeBroker()
    blobs = MemoryBlobs(keys, chunk_size=64)
    sources = Sources(blobs, default_policy(), REGISTRY)
    packages = Packages(MemoryPackages(), sources, broker.as_broker(), SETTINGS, shred=keys.destroy)
    return packages, broker, blobs, keys


def order(request_id: str = "R-1", subject: str | None = "ref:s1") -> PackageOrder:
    answers = [
        answer("crm", blob_id=f"upload:{request_id}:crm"),
        answer("vendor", "no_answer", reason="timed out"),
    ]
    return PackageOrder(request_id, "access", KID, answers, RECEIVED, subject)


async def built(packages: Packages, blobs: MemoryBlobs, request_id: str = "R-1", **kw: Any) -> None:
    await blobs.write(f"upload:{request_id}:crm", KID, pieces(json.dumps(CRM).encode()), now=NOW)
    await packages.build(order(request_id, **kw), NOW)


async def body(stream: AsyncIterator[bytes]) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join([p async for p in stream])))


def no_personal_data(broker: FakeBroker) -> None:
    text = json.dumps([e for _, _, e in broker.sent])
    assert "Ada" not in text and "C-1" not in text and "ref:s1" not in text


async def test_a_build_is_stored_recorded_and_announced_once() -> None:
    packages, broker, blobs, _ = make()
    await packages.expect(["R-1"], NOW)
    with pytest.raises(PackageNotReady):
        await packages.open("R-1", "dpo", NOW)
    await built(packages, blobs)
    first = await packages.build(order(), NOW + timedelta(hours=1))  # redelivered: no rebuild
    assert first.state == "built" and first.systems == {"crm": "answered", "vendor": "no_answer"}
    assert first.built_at == NOW.isoformat()
    events = broker.of_type("gardien.access.package.built")
    assert len(events) == 1 and events[0]["data"]["records"] == 1
    assert events[0]["data"]["sha256"] == (await blobs.info("package:R-1")).sha256  # type: ignore[union-attr]
    assert [k for t, k, e in broker.sent] == ["R-1"] and broker.sent[0][
        0
    ] == "gardien.erasure.cases.v1"
    no_personal_data(broker)


async def test_the_first_download_delivers_and_later_ones_are_chargeable_copies() -> None:
    packages, broker, blobs, _ = make()
    await built(packages, blobs)
    got, stream = await packages.open("R-1", "dpo-key", NOW + timedelta(days=1))
    archive = await body(stream)
    assert json.loads(archive.read("crm/records.json")) == CRM and not got.chargeable
    again, stream2 = await packages.open("R-1", "dpo-key", NOW + timedelta(days=2))
    assert again.chargeable and again.downloads == 2 and (await body(stream2)).testzip() is None
    delivered = broker.of_type("gardien.access.package.delivered")
    assert [e["data"]["chargeable"] for e in delivered] == [False]
    assert delivered[0]["data"]["actor"] == "dpo-key" and delivered[0]["data"]["via"] == "api"
    copies = broker.of_type("gardien.access.package.downloaded")
    assert [(e["data"]["copy_number"], e["data"]["chargeable"]) for e in copies] == [(2, True)]
    no_personal_data(broker)


async def test_a_second_request_of_the_same_subject_within_a_year_is_chargeable() -> None:
    packages, _, blobs, _ = make()
    await built(packages, blobs, "R-1")
    await built(packages, blobs, "R-2")
    await built(packages, blobs, "R-3", subject="ref:other")
    await packages.open("R-1", "dpo", NOW)
    second, _ = await packages.open("R-2", "dpo", NOW + timedelta(days=200))
    other, _ = await packages.open("R-3", "dpo", NOW + timedelta(days=200))
    assert second.chargeable and not other.chargeable  # flagged, never refused


async def test_unknown_and_deleted_packages_are_refused_precisely() -> None:
    packages, broker, blobs, keys = make()
    with pytest.raises(PackageMissing):
        await packages.open("R-NONE", "dpo", NOW)
    await built(packages, blobs)
    assert await packages.expire(NOW + timedelta(days=400)) == []  # never delivered: kept
    await packages.open("R-1", "dpo", NOW)
    assert await packages.expire(NOW + timedelta(days=29)) == []
    assert await packages.expire(NOW + timedelta(days=30)) == ["R-1"]
    assert await blobs.info("package:R-1") is None and await blobs.info("upload:R-1:crm") is None
    assert keys.keys[KID] is None  # the package's key is destroyed with it
    deleted = broker.of_type("gardien.access.package.deleted")
    assert [(e["data"]["reason"], e["data"]["blobs"]) for e in deleted] == [("expired", 2)]
    with pytest.raises(PackageGone, match="deleted"):
        await packages.open("R-1", "dpo", NOW + timedelta(days=31))
    assert await packages.expire(NOW + timedelta(days=60)) == []


async def test_a_shredded_key_makes_the_package_gone() -> None:
    packages, _, blobs, keys = make()
    await built(packages, blobs)
    await keys.destroy(KID, NOW)
    with pytest.raises(PackageGone, match="no longer readable"):
        await packages.open("R-1", "dpo", NOW)


async def test_a_subject_link_works_once_and_expires() -> None:
    packages, broker, blobs, _ = make()
    await built(packages, blobs)
    token, expires = await packages.link("R-1", "dpo", NOW)
    assert expires == NOW + timedelta(hours=1)
    got, stream = await packages.open_link(token, NOW + timedelta(minutes=5))
    assert (await body(stream)).testzip() is None and got.downloads == 1
    with pytest.raises(PackageGone, match="already used"):
        await packages.open_link(token, NOW + timedelta(minutes=6))
    late, _ = await packages.link("R-1", "dpo", NOW)
    with pytest.raises(LinkRefused, match="expired"):
        await packages.open_link(late, NOW + timedelta(hours=1))
    with pytest.raises(LinkRefused, match="signature"):
        await packages.open_link(late[:-2] + ("AA" if late[-2:] != "AA" else "BB"), NOW)
    with pytest.raises(LinkRefused, match="malformed"):
        await packages.open_link("nonsense", NOW)
    delivered = broker.of_type("gardien.access.package.delivered")
    assert delivered[0]["data"]["via"] == "link" and delivered[0]["data"]["actor"] == "subject-link"
    assert len(broker.of_type("gardien.access.package.link_issued")) == 2


async def test_a_link_for_a_package_not_built_is_refused() -> None:
    packages, _, _, _ = make()
    await packages.expect(["R-1"], NOW)
    with pytest.raises(PackageNotReady):
        await packages.link("R-1", "dpo", NOW)
