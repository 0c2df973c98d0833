"""Tamper tests: records altered, deleted, swapped or rewritten in MongoDB are named."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services.audit import chain as chains
from services.audit.cli import audit_app
from services.audit.repository import chain_seq
from shared import topics
from shared.settings import Settings
from tests.audit.conftest import Trail
from tests.support import example

pytestmark = pytest.mark.integration


@pytest.fixture
def trail(mongo_trail: Trail) -> Trail:
    """Records tampered with in MongoDB itself: the MongoDB trail."""
    return mongo_trail


CHAIN = f"{topics.REQUESTS}/9"


async def _ten(trail: Trail) -> list[dict[str, Any]]:
    events = [example("request-received.json", request_id=f"REQ-T-{i}") for i in range(10)]
    await trail.feed(*events)
    found = trail.db["records"].find({"chain": CHAIN}).sort("seq", 1)
    return [d async for d in found]


async def _verify(trail: Trail) -> dict[str, Any]:
    reply = await trail.http.get("/v1/audit/verify", headers=trail.headers)
    assert reply.status_code == 200
    body: dict[str, Any] = reply.json()
    return body


async def test_intact_trail_verifies_with_checkpoints(trail: Trail) -> None:
    await _ten(trail)
    signed = await trail.http.post("/v1/audit/checkpoints", headers=trail.headers)
    assert signed.json()["signed"] == 1
    report = await _verify(trail)
    assert report["ok"], report
    assert report["records"] == 10
    assert report["checkpoints_checked"] == 1


async def test_altered_record_is_named(trail: Trail) -> None:
    recs = await _ten(trail)
    await trail.db["records"].update_one({"_id": recs[3]["_id"]}, {"$set": {"type": "x"}})
    first = (await _verify(trail))["first_problem"]
    assert first == {
        "chain": CHAIN,
        "seq": 4,
        "kind": "altered",
        "detail": "content hash differs",
        "record_id": recs[3]["_id"],
    }


async def test_deleted_record_is_named(trail: Trail) -> None:
    recs = await _ten(trail)
    await trail.db["records"].delete_one({"_id": recs[5]["_id"]})
    first = (await _verify(trail))["first_problem"]
    assert (first["seq"], first["kind"]) == (6, "missing")


async def test_deleted_last_record_is_found_through_the_head(trail: Trail) -> None:
    recs = await _ten(trail)
    await trail.db["records"].delete_one({"_id": recs[9]["_id"]})
    first = (await _verify(trail))["first_problem"]
    assert (first["seq"], first["kind"]) == (10, "missing")


async def test_swapped_records_are_named(trail: Trail) -> None:
    recs = await _ten(trail)
    a, b = recs[2], recs[6]  # positions 3 and 7 exchange their contents
    await trail.db["records"].update_one({"_id": a["_id"]}, {"$set": {"chain_seq": "tmp"}})
    await trail.db["records"].update_one({"_id": b["_id"]}, {"$set": {"chain_seq": a["chain_seq"]}})
    await trail.db["records"].update_one({"_id": a["_id"]}, {"$set": {"chain_seq": b["chain_seq"]}})
    first = (await _verify(trail))["first_problem"]
    assert (first["seq"], first["kind"], first["record_id"]) == (3, "reordered", b["_id"])


async def test_rewritten_history_fails_the_signed_checkpoint(trail: Trail) -> None:
    recs = await _ten(trail)
    await trail.app.state.checkpointer.sign_heads()
    # An attacker with database access rewrites record 4 and re-hashes the rest consistently.
    prev = recs[2]["hash"]
    for rec in recs[3:]:
        rec = {**rec, "prev_hash": prev}
        if rec["seq"] == 4:
            rec["type"] = "gdpr.request.rewritten"
        rec["hash"] = chains.record_hash(rec)
        await trail.db["records"].replace_one({"_id": rec["_id"]}, rec)
        prev = rec["hash"]
    await trail.db["chain_heads"].update_one({"_id": CHAIN}, {"$set": {"hash": prev}})
    first = (await _verify(trail))["first_problem"]
    assert (first["seq"], first["kind"]) == (10, "signature")
    assert "rewritten" in first["detail"]


async def test_forged_checkpoint_is_a_signature_mismatch(trail: Trail) -> None:
    await _ten(trail)
    await trail.app.state.checkpointer.sign_heads()
    await trail.db["checkpoints"].update_one(
        {"_id": chain_seq(CHAIN, 10)}, {"$set": {"at": "2030-01-01T00:00:00+00:00"}}
    )
    first = (await _verify(trail))["first_problem"]
    assert (first["seq"], first["kind"]) == (10, "signature")


async def test_cli_verify_exports_resumes_and_fails_on_tampering(
    trail: Trail, settings: Settings, tmp_path: Path
) -> None:
    recs = await _ten(trail)
    await trail.app.state.checkpointer.sign_heads()
    env = {"GARDIEN_DB_PREFIX": settings.gardien_db_prefix, "GARDIEN_AUDIT_VERIFY_BATCH": "10"}
    uri = ["--mongodb-uri", settings.mongodb_uri]
    runner = CliRunner()

    def cli(*args: str) -> Any:
        return runner.invoke(audit_app, [*args, *uri], env=env)

    held = tmp_path / "checkpoints.json"
    exported = await asyncio.to_thread(cli, "checkpoints", "export", "--out", str(held))
    assert exported.exit_code == 0, exported.output
    state = tmp_path / "progress.json"
    ok = await asyncio.to_thread(cli, "verify", "--state", str(state), "--checkpoints", str(held))
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.output
    assert state.exists()
    # Resuming from the saved state re-reads nothing old: the alteration below goes unseen
    # there, but a full run from genesis names it.
    await trail.db["records"].update_one({"_id": recs[1]["_id"]}, {"$set": {"offset": -5}})
    resumed = await asyncio.to_thread(cli, "verify", "--state", str(state))
    assert resumed.exit_code == 0, resumed.output
    full = await asyncio.to_thread(cli, "verify", "--json")
    assert full.exit_code == 1
    assert '"kind": "altered"' in full.output
    assert recs[1]["_id"] in full.output
