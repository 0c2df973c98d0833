"""The persistence kit on the real MongoDB wire protocol: bulk versioned saves, lost races
found and redone alone, the outbox relayed from memory and cleared without losing newer events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from shared import topics
from shared.errors import TransientError
from shared.events import new_event
from shared.persistence import Change, VersionedCollection, relay_saved, retry_lost
from shared.settings import Settings
from tests.support import read_all, topic_reader

pytestmark = pytest.mark.integration


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[KafkaBroker]:
    kafka = KafkaBroker(settings.kafka_bootstrap_servers)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.stop()


@pytest.fixture
async def store(mongo_client: Any, settings: Settings) -> VersionedCollection:
    db = mongo_client[settings.database_name("kit")]
    return VersionedCollection(db[f"docs_{uuid.uuid4().hex[:8]}"])


async def test_new_and_changed_documents_are_saved_in_one_call(store: VersionedCollection) -> None:
    first = await store.save_many([Change("a", None, {"n": 1}), Change("b", None, {"n": 1})])
    assert [c.doc_id for c in first.saved] == ["a", "b"] and first.lost == []
    docs = await store.load_many(["a", "b", "missing"])
    assert set(docs) == {"a", "b"} and docs["a"]["version"] == 1
    second = await store.save_many([Change("a", 1, {"n": 2}), Change("b", 1, {"n": 2})])
    assert second.lost == []
    assert {d["n"] for d in (await store.load_many(["a", "b"])).values()} == {2}


async def test_only_the_races_lost_are_reported(store: VersionedCollection) -> None:
    await store.save_many([Change("a", None, {"n": 0}), Change("b", None, {"n": 0})])
    # Another writer moves "b" on first; "c" is created by someone else meanwhile.
    await store.save_many([Change("b", 1, {"n": 9}), Change("c", None, {"n": 9})])
    result = await store.save_many(
        [Change("a", 1, {"n": 1}), Change("b", 1, {"n": 1}), Change("c", None, {"n": 1})]
    )
    assert [c.doc_id for c in result.saved] == ["a"]
    assert sorted(result.lost) == ["b", "c"]
    docs = await store.load_many(["a", "b", "c"])
    assert (docs["a"]["n"], docs["b"]["n"], docs["c"]["n"]) == (1, 9, 9)


async def test_lost_races_are_decided_again_until_none_is_lost(store: VersionedCollection) -> None:
    await store.save_many([Change(i, None, {"n": 0}) for i in ("a", "b")])
    rounds: list[list[str]] = []
    interfered = False

    async def attempt(ids: list[str]) -> list[str]:
        nonlocal interfered
        rounds.append(ids)
        docs = await store.load_many(ids)
        if not interfered:  # a concurrent writer bumps "b" between our read and our write
            interfered = True
            await store.save_many([Change("b", docs["b"]["version"], {"n": 100})])
        changes = [Change(i, d["version"], {"n": d["n"] + 1}) for i, d in docs.items()]
        return (await store.save_many(changes)).lost

    await retry_lost(["a", "b"], attempt)
    assert rounds == [["a", "b"], ["b"]]
    docs = await store.load_many(["a", "b"])
    assert (docs["a"]["n"], docs["b"]["n"]) == (1, 101)


async def test_endless_races_become_a_transient_failure() -> None:
    async def always_lost(ids: list[str]) -> list[str]:
        return ids

    with pytest.raises(TransientError, match="kept changing"):
        await retry_lost(["x"], always_lost)


async def test_outbox_is_published_from_memory_and_cleared_once_sent(
    store: VersionedCollection, settings: Settings, broker: KafkaBroker
) -> None:
    rid = f"REQ-KIT-{uuid.uuid4().hex[:6]}"
    event = new_event("gardien.request.accepted", {"request_id": rid}, source="test")
    entry = {"id": event.id, "key": rid, "event": event.model_dump(mode="json")}
    change = Change(rid, None, {"status": "x"}, outbox=[entry], events=[(event, rid)])
    saved = await store.save_many([change])
    assert (await store.load_many([rid]))[rid]["outbox_pending"] is True
    async with topic_reader(settings.kafka_bootstrap_servers, topics.REQUEST_EVENTS) as reader:
        assert await relay_saved(broker, store.collection, saved.saved) == 1
        found = await read_all(reader, {"it": lambda r: r.key == rid.encode()})
    assert event.id.encode() in found["it"].value
    doc = (await store.load_many([rid]))[rid]
    # nx-27017 stores a boolean set by $set as 0/1 (queries still match True/False).
    assert doc["outbox"] == [] and not doc["outbox_pending"]


async def test_clearing_never_drops_a_newer_writers_events(
    store: VersionedCollection, broker: KafkaBroker
) -> None:
    mine = new_event("gardien.request.accepted", {"request_id": "R1"}, source="test")
    theirs = new_event("gardien.request.decided", {"request_id": "R1"}, source="test")
    entry = {"id": mine.id, "key": "R1", "event": mine.model_dump(mode="json")}
    saved = await store.save_many([Change("R1", None, {}, outbox=[entry], events=[(mine, "R1")])])
    later = {"id": theirs.id, "key": "R1", "event": theirs.model_dump(mode="json")}
    await store.save_many([Change("R1", 1, {}, outbox=[entry, later], events=[])])
    await relay_saved(broker, store.collection, saved.saved)
    doc = (await store.load_many(["R1"]))["R1"]
    assert [e["id"] for e in doc["outbox"]] == [mine.id, theirs.id] and doc["outbox_pending"]


async def test_a_batch_whose_every_write_landed_needs_no_token_read(
    store: VersionedCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.save_many([Change("a", None, {"n": 0}), Change("b", None, {"n": 0})])

    async def no_read(changes: Any) -> Any:
        raise AssertionError("the token read is only for batches that lost a race")

    with monkeypatch.context() as patched:
        patched.setattr(store, "_settle", no_read)
        result = await store.save_many([Change("a", 1, {"n": 1}), Change("c", None, {"n": 1})])
    assert sorted(c.doc_id for c in result.saved) == ["a", "c"] and result.lost == []
    lost = await store.save_many([Change("a", 1, {"n": 2}), Change("b", 1, {"n": 2})])
    assert [c.doc_id for c in lost.saved] == ["b"] and lost.lost == ["a"]  # read: one lost
