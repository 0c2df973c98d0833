"""The subject index the writer keeps: one entry per subject and aggregate, each written once."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

from bench import ceiling
from services.audit.cache import Seen
from services.audit.memory import MemoryRecords
from services.audit.usecases import Auditor
from shared import topics
from tests.audit.conftest import Trail, delivery
from tests.support import example


def test_seen_names_each_unmarked_key_once_in_order() -> None:
    seen = Seen(10)
    seen.mark(["b"])
    assert seen.unseen(["c", "b", "a", "c"]) == ["c", "a"]


def test_seen_forgets_the_least_recently_used_keys_past_its_size() -> None:
    seen = Seen(2)
    seen.mark(["a", "b"])
    assert seen.unseen(["a"]) == []  # asked: now the most recent
    seen.mark(["c"])
    assert seen.unseen(["a", "b", "c"]) == ["b"] and len(seen) == 2


def _request(rid: str, name: str = "request-received.json") -> Any:
    return delivery(example(name, request_id=rid), topics.REQUESTS, 3)


class Watched:
    """Records whose subject-index writes are kept, the first one failing if ``fail``."""

    def __init__(self, records: MemoryRecords, fail: bool = False) -> None:
        self.records, self.fail = records, fail
        self.inserted: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.records, name)

    async def insert_index(self, entries: list[dict[str, Any]]) -> None:
        if self.fail:
            self.fail = False
            raise OSError("the server went away")
        self.inserted += entries
        await self.records.insert_index(entries)


def _watched(trail: Trail, fail: bool = False) -> tuple[Auditor, Watched]:
    records = trail.repos.records
    assert isinstance(records, MemoryRecords)
    watched = Watched(records, fail)
    repos = replace(trail.repos, records=watched)
    return Auditor(repos, trail.auditor.pseudonyms, trail.auditor.span, trail.clock), watched


async def test_an_index_write_that_failed_is_written_with_the_next_batch(trail: Trail) -> None:
    rid = f"REQ-{uuid.uuid4().hex[:6]}"
    records = trail.repos.records
    assert isinstance(records, MemoryRecords)
    auditor, _ = _watched(trail, fail=True)
    with pytest.raises(OSError):
        await auditor.record_batch([_request(rid)])
    assert records.index == {}
    await auditor.record_batch([_request(rid, "request-extended.json")])
    entries = list(records.index.values())
    assert all(e["_id"] == f"{e['ref']}|request_id:{rid}" for e in entries)
    assert len(entries) == 2  # the subject's two identifiers
    assert len(await records.records_of_subject(entries[0]["ref"])) == 2


@pytest.mark.parametrize("kind", ["access", "erasure"])
async def test_the_ceiling_counts_the_entries_the_writer_stores(trail: Trail, kind: str) -> None:
    need = ceiling.NEEDS[kind]
    first, *rest = need.audited
    received = example("request-received.json", **first)
    ids = received["data"]["subject"]["identifiers"]
    # Work requested and commands name the subject themselves (links name requests and cases).
    datas = [{**d, "identifiers": ids} if "case_id" in d else d for d in rest]
    events = [received] + [
        {**example("request-extended.json"), "type": f"gardien.test.{i}", "data": data}
        for i, data in enumerate(datas)
    ]
    auditor, watched = _watched(trail)
    for i, event in enumerate(events):  # one batch each: the writer remembers across them
        topic = topics.REQUESTS if i == 0 else topics.REQUEST_EVENTS
        await auditor.record_batch([delivery(event, topic, 5)])
    records = trail.repos.records
    assert isinstance(records, MemoryRecords)
    stored = [r for r in records.docs.values() if r.get("event_id") in {e["id"] for e in events}]
    assert len(stored) == len(events) and all(len(r["subject_refs"]) == 2 for r in stored)
    assert len(watched.inserted) == len(records.index) == need.index_entries
