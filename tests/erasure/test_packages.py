"""The package's content: manifest (Art 15(1)), portability's scope (Art 20), the ZIP."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.erasure.assembly import Sources, package_stream
from services.erasure.packages import (
    CNIL,
    Outcome,
    PackageOrder,
    SystemAnswer,
    manifest,
    portable_categories,
    record_category,
)
from services.erasure.records import JSON, JSON_LINES
from services.erasure.registry import Registry, load_registry
from shared.blobs import MemoryBlobs
from shared.rules import default_policy

NOW = datetime(2027, 3, 20, 10, tzinfo=UTC)
RECEIVED = datetime(2027, 3, 6, 9, tzinfo=UTC)
KID = "case:req:R-1"
REGISTRY = load_registry(Path("examples/connected_systems/registry.yaml"))
CRM = [{"customer_id": "C-1", "name": "Ada", "address": {"city": "Lyon"}, "category": "profile"}]
BILLING = [
    {"invoice": "F-1", "total": 12.5, "category": "invoices"},
    {"invoice": "P-9", "card": {"last4": "4242"}, "category": "payment"},
]


def answer(system: str, status: str = "answered", **kw: Any) -> SystemAnswer:
    defaults: dict[str, Any] = {
        "at": NOW if status != "no_answer" else None,
        "reason": None,
        "blob_id": f"upload:{system}" if status == "answered" else None,
        "content_type": JSON,
        "categories": list(REGISTRY.get(system).categories),  # type: ignore[union-attr]
    }
    return SystemAnswer(system, status, **{**defaults, **kw})  # type: ignore[arg-type]


def order(right: str = "access", *answers: SystemAnswer) -> PackageOrder:
    return PackageOrder("R-1", right, KID, list(answers), RECEIVED)  # type: ignore[arg-type]


async def pieces(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def build(o: PackageOrder, blobs: MemoryBlobs) -> tuple[zipfile.ZipFile, dict[str, Outcome]]:
    outcomes: dict[str, Outcome] = {}
    sources = Sources(blobs, default_policy(), REGISTRY)
    data = b"".join([p async for p in package_stream(sources, o, NOW, outcomes)])
    return zipfile.ZipFile(io.BytesIO(data)), outcomes


async def uploads() -> MemoryBlobs:
    blobs = MemoryBlobs(chunk_size=16)
    await blobs.write("upload:crm", KID, pieces(json.dumps(CRM).encode()), now=NOW)
    lines = "\n".join(json.dumps(r) for r in BILLING).encode()
    await blobs.write("upload:billing", KID, pieces(lines), now=NOW)
    await blobs.write("upload:vendor", KID, pieces(b"<html>oops</html>"), now=NOW)
    return blobs


def test_the_manifest_carries_art_15_particulars_from_the_policy() -> None:
    o = order("access", answer("crm"), answer("newsletter", "no_answer", reason="escalated"))
    outcomes = {
        "crm": Outcome("answered", None, 1, 0, ["crm/records.json", "crm/records.csv"]),
        "newsletter": Outcome("no_answer", "escalated"),
    }
    doc = manifest(o, default_policy(), REGISTRY, outcomes, NOW).model_dump(mode="json")
    assert doc["request_id"] == "R-1" and doc["built_at"] == NOW.isoformat()
    assert doc["complaint"] == CNIL and "access" in doc["rights"] and "erasure" in doc["rights"]
    assert doc["controller"]["organisation"]
    crm, newsletter = doc["systems"]
    assert crm["status"] == "answered" and crm["answered_at"] == NOW.isoformat()
    profile = crm["categories"][0]
    assert profile["category"] == "profile" and profile["activity"] == "customers"
    assert profile["purposes"] and profile["legal_bases"] and profile["recipients"]
    assert profile["retention"] and profile["source"].startswith("recorded by crm")
    assert newsletter["status"] == "no_answer" and newsletter["reason"] == "escalated"
    assert newsletter["answered_at"] is None
    assert any("newsletter (processor)" in r for r in newsletter["categories"][0]["recipients"])


def test_registry_retention_is_quoted_for_kept_categories() -> None:
    o = order("access", answer("billing"))
    doc = manifest(o, default_policy(), REGISTRY, {"billing": Outcome("answered", None)}, NOW)
    invoices = doc.systems[0].categories[0]
    assert invoices.category == "invoices"
    assert invoices.retention == [
        "10 years from financial year end (Art 17(3)(b) legal obligation (C. com. L123-22))"
    ]


def test_portability_keeps_provided_consent_or_contract_categories() -> None:
    billing = answer("billing", provided_by_subject=["invoices", "payment"])
    # invoices: legal obligation only (accounting) -> not portable; payment: contract -> portable
    assert portable_categories(default_policy(), REGISTRY, billing) == {"payment"}
    crm = answer("crm", provided_by_subject=["profile"])
    assert portable_categories(default_policy(), REGISTRY, crm) == {"profile"}
    assert portable_categories(default_policy(), REGISTRY, answer("crm")) == set()


def test_a_record_category_is_its_field_or_the_systems_only_one() -> None:
    assert record_category({"category": "payment"}, answer("billing")) == "payment"
    assert record_category({}, answer("billing")) is None
    assert record_category({}, answer("newsletter")) == "marketing"


@pytest.mark.parametrize("held", [4 << 20, 0])  # uploads read once from memory, or streamed
async def test_an_access_package_has_json_csv_and_a_manifest_per_system(
    held: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.erasure.assembly.HELD", held)
    reads: list[str] = []
    blobs = await uploads()
    plain_read = blobs.read

    def counted(blob_id: str, kid: str) -> AsyncIterator[bytes]:
        reads.append(blob_id)
        return plain_read(blob_id, kid)

    blobs.read = counted  # type: ignore[method-assign]
    o = order(
        "access",
        answer("crm"),
        answer("billing", content_type=JSON_LINES),
        answer("vendor"),
        answer("newsletter", "failed", reason="HTTP 500 three times"),
    )
    archive, outcomes = await build(o, blobs)
    assert reads.count("upload:crm") == (1 if held else 3)
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == [
        "billing/records.csv",
        "billing/records.json",
        "crm/records.csv",
        "crm/records.json",
        "manifest.json",
    ]
    assert json.loads(archive.read("crm/records.json")) == CRM
    assert json.loads(archive.read("billing/records.json")) == BILLING
    rows = list(csv.DictReader(io.StringIO(archive.read("billing/records.csv").decode())))
    assert rows[1]["card.last4"] == "4242" and rows[0]["card.last4"] == ""
    assert list(rows[0]) == ["invoice", "total", "category", "card.last4"]
    doc = json.loads(archive.read("manifest.json"))
    by = {s["system"]: s for s in doc["systems"]}
    assert by["vendor"]["status"] == "failed" and "does not parse" in by["vendor"]["reason"]
    assert "oops" not in json.dumps(doc) and by["newsletter"]["reason"] == "HTTP 500 three times"
    assert by["billing"]["records"] == 2 and by["crm"]["files"] == [
        "crm/records.json",
        "crm/records.csv",
    ]
    assert outcomes["vendor"].status == "failed"


async def test_a_portability_package_leaves_out_what_is_not_portable() -> None:
    o = order(
        "portability",
        answer("billing", content_type=JSON_LINES, provided_by_subject=["invoices", "payment"]),
        answer("crm"),  # the subject provided nothing here
    )
    archive, _ = await build(o, await uploads())
    assert json.loads(archive.read("billing/records.json")) == [BILLING[1]]
    assert json.loads(archive.read("crm/records.json")) == []
    assert archive.read("crm/records.csv") == b""  # no records, no columns
    doc = json.loads(archive.read("manifest.json"))
    assert [(s["records"], s["left_out"]) for s in doc["systems"]] == [(1, 1), (0, 1)]
    assert any("Art 20" in n for n in doc["notes"])


async def test_a_missing_upload_is_a_failed_system() -> None:
    archive, outcomes = await build(order("access", answer("crm")), MemoryBlobs())
    assert archive.namelist() == ["manifest.json"]
    assert outcomes["crm"].reason == "the upload is missing from the store"


@pytest.mark.parametrize("status", ["not_found", "no_answer"])
async def test_systems_without_data_are_listed_without_files(status: str) -> None:
    archive, _ = await build(
        order("access", answer("crm", status, reason="timeout")), MemoryBlobs()
    )
    doc = json.loads(archive.read("manifest.json"))
    assert doc["systems"][0]["status"] == status and doc["systems"][0]["files"] == []


def test_registry_fixture_has_the_four_reference_systems() -> None:
    assert isinstance(REGISTRY, Registry)
    assert {"crm", "newsletter", "billing", "vendor"} <= {s.id for s in REGISTRY.systems}


async def test_an_upload_sealed_under_another_key_is_a_failed_system() -> None:
    blobs = MemoryBlobs()
    await blobs.write("upload:crm", "case:other", pieces(json.dumps(CRM).encode()), now=NOW)
    await blobs.write("upload:x", KID, pieces(b"[]"), now=NOW)  # the case's key exists
    archive, outcomes = await build(order("access", answer("crm")), blobs)
    assert outcomes["crm"].reason == "the upload does not open under the case's key"
    assert archive.namelist() == ["manifest.json"]


async def test_a_large_upload_is_built_without_holding_it() -> None:
    """6 MB of JSON Lines (over the 4 MiB held in memory): the build's extra memory stays
    around a few chunks, not the upload's size (the package blob itself is kept aside)."""
    import tracemalloc

    line = (json.dumps({"id": 1, "category": "profile", "note": "n" * 200}) + "\n").encode()
    count = 6 * 1024 * 1024 // len(line)

    async def upload() -> AsyncIterator[bytes]:
        for _ in range(count // 100):
            yield line * 100

    blobs = MemoryBlobs(chunk_size=256 * 1024)
    await blobs.write("upload:crm", KID, upload(), now=NOW)
    o = order("access", answer("crm", content_type=JSON_LINES))
    sources = Sources(blobs, default_policy(), REGISTRY)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        size = sum([len(p) async for p in package_stream(sources, o, NOW, {})])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 0 and peak - before < 3 * 1024 * 1024, (peak - before) / 1e6
