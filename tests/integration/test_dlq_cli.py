"""`gardien dlq`: dead letters listed with reasons (no values) and re-driven, audited."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest

from services.audit.app import create_app as audit_app
from services.intake.app import create_app as intake_app
from shared import topics
from shared.settings import Settings
from tests.support import REPO, api_key, produce, read_until, running, topic_reader, wait_for

pytestmark = pytest.mark.integration


def gardien(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers}
    return subprocess.run(
        [sys.executable, "-m", "gardien", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def test_a_dead_letter_is_listed_then_re_driven_and_the_re_drive_is_audited(
    settings: Settings,
) -> None:
    key = f"REQ-DLQ-{uuid.uuid4().hex[:8]}".encode()
    data = {"note": "alice@example.org"}  # invalid: no request_id, right ...
    poison = json.dumps({"specversion": "1.0", "id": key.decode(), "source": "t",
                         "type": "gdpr.request.received", "data": data}).encode()  # fmt: skip
    dlq = topics.dlq(topics.REQUESTS)
    headers = api_key(settings)
    async with running(intake_app(settings)), running(audit_app(settings)) as audit:
        async with topic_reader(settings.kafka_bootstrap_servers, dlq) as reader:
            await produce(settings.kafka_bootstrap_servers, topics.REQUESTS, [(key, poison)])
            dead = await read_until(reader, lambda r: r.key == key)
        listed = await asyncio.to_thread(gardien, settings, "dlq", "list", "--json", "--topic", dlq)
        assert listed.returncode == 0, listed.stderr
        rows = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
        mine = next(r for r in rows if r["offset"] == dead.offset)
        assert mine["service"] == "intake" and "invalid data" in mine["reason"]
        assert "alice" not in listed.stdout  # values are never listed
        async with topic_reader(settings.kafka_bootstrap_servers, topics.REQUESTS) as source:
            done = await asyncio.to_thread(
                gardien, settings, "dlq", "redrive", "--topic", dlq, "--offset", str(dead.offset),
                "--operator", "ops-test",
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            again = await read_until(
                source, lambda r: r.key == key and "x-gardien-redriven-from" in dict(r.headers)
            )
        assert again.value == poison
        assert dict(again.headers)["x-gardien-redriven-from"] == f"{dlq}@{dead.offset}".encode()
        assert not [h for h, _ in again.headers if h.startswith("x-gardien-dlq-")]

        async def audited() -> list[dict[str, object]] | None:
            params = {"type": "gardien.operation.dlq_redriven"}
            items = (await audit.get("/v1/audit/events", params=params, headers=headers)).json()
            found = [i for i in items["items"] if i["data"].get("dlq_offset") == dead.offset]
            return found or None

        record = (await wait_for(audited))[0]
        assert record["data"]["operator"] == "ops-test" and record["data"]["dlq_topic"] == dlq


def test_unknown_topic_and_missing_offset_are_one_line(settings: Settings) -> None:
    bad = gardien(settings, "dlq", "list", "--topic", "nope")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("gardien: unknown dead-letter")
    assert len(bad.stderr.strip().splitlines()) == 1
