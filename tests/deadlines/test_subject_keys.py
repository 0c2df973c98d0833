"""A batch of deadlines work reads and writes its subject keys in one go (issue 12): the
retention clocks a poll starts, the purges a scheduler batch fires, the cases it closes.

The timers and holds are the in-memory fakes; the vault is the real one on the embedded
nx-27017 server, with a ``CommandListener`` counting the ``subject_keys`` commands.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry import trace
from pymongo import AsyncMongoClient

from services.deadlines.app import bootstrap
from services.deadlines.handlers import typed
from services.deadlines.memory import MemoryHolds, MemoryTimers
from services.deadlines.repository import MongoVault, Repositories
from services.deadlines.scheduler import Scheduler
from shared.clock import FakeClock
from shared.events import CloudEvent, new_event
from shared.pseudonyms import Pseudonymiser
from shared.rules import default_policy
from shared.settings import Settings
from tests.shared.test_subject_vault import Commands

pytestmark = pytest.mark.integration
Doc = dict[str, Any]
N = 50


@pytest.fixture
async def counted(settings: Settings) -> AsyncIterator[tuple[Any, Commands]]:
    listener = Commands()
    client: AsyncMongoClient[Doc] = AsyncMongoClient(
        settings.mongodb_uri, tz_aware=True, event_listeners=[listener]
    )
    db = client[settings.database_name(f"dlkeys{uuid.uuid4().hex[:8]}")]
    listener.db = db.name
    try:
        yield db, listener
    finally:
        await client.close()


def ended(contract: str) -> CloudEvent:
    data = {"contract_id": contract, "ended_at": "2026-06-30T18:00:00+02:00",
            "subject": {"kind": "customer", "identifiers": {"email": f"{contract}@example.org"}},
            "categories": ["customer"]}  # fmt: skip
    at = datetime.fromisoformat(data["ended_at"])  # type: ignore[arg-type]
    return new_event("gdpr.contract.ended", data, source="test", event_id=f"e-{contract}", time=at)


def closed(timer_id: str) -> CloudEvent:
    data = {"case_id": f"ret:{timer_id}", "origin": "retention", "state": "closed", "systems": {}}
    at = datetime(2031, 7, 2, 10, tzinfo=UTC)
    return new_event("gardien.erasure.case.closed", data, source="test", time=at)


async def test_a_retention_wave_reads_creates_opens_and_shreds_its_keys_in_one_go(
    counted: tuple[Any, Commands],
) -> None:
    db, commands = counted
    timers = MemoryTimers()
    repos = Repositories(timers, MemoryHolds(), MongoVault(db))
    clock, policy = FakeClock(datetime(2026, 7, 1, 12, tzinfo=UTC)), default_policy()
    span = trace.get_tracer("tests").start_as_current_span
    uses = bootstrap(repos, policy, clock, Pseudonymiser(b"k" * 32), span)
    contracts = [f"CTR-{uuid.uuid4().hex[:6]}-{i}" for i in range(N)]
    tids = [f"retention:{c}:customer" for c in contracts]

    await uses.handle([typed(ended(c)) for c in contracts])  # (a) 50 new retention clocks
    assert commands.names == ["find", "insert"]
    assert all(timers.docs[t]["inputs"]["subject"]["kid"] == t for t in tids)

    commands.names.clear()  # (b) the purges fire in one scheduler batch
    clock.set(datetime(2031, 7, 1, 12, tzinfo=UTC))
    assert await Scheduler(repos, clock, policy=policy, batch=2 * N).tick() == N
    assert commands.names == ["find"]
    work = {e.data["timer_id"]: e for e, _ in timers.sent if e.type.endswith("work.requested")}
    assert sorted(work) == sorted(tids)
    email = work[tids[7]].data["subject"]["identifiers"]["email"]
    assert email == f"{contracts[7]}@example.org"

    commands.names.clear()  # (c) erasure closes the purge cases: the keys go in one write
    await uses.handle([typed(closed(t)) for t in tids])
    assert commands.names == ["find", "update"]
    assert all([await repos.vault.destroyed(t) for t in tids])
