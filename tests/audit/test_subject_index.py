"""The subject index the writer keeps: one entry per subject and aggregate, each written once."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

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


class FailingOnce:
    """Records whose first subject-index write fails (the server went away)."""

    def __init__(self, records: MemoryRecords) -> None:
        self.records, self.failed = records, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.records, name)

    async def insert_index(self, entries: list[dict[str, Any]]) -> None:
        if not self.failed:
            self.failed = True
            raise OSError("the server went away")
        await self.records.insert_index(entries)


async def test_an_index_write_that_failed_is_written_with_the_next_batch(trail: Trail) -> None:
    rid = f"REQ-{uuid.uuid4().hex[:6]}"
    records = trail.repos.records
    assert isinstance(records, MemoryRecords)
    flaky = replace(trail.repos, records=FailingOnce(records))
    auditor = Auditor(flaky, trail.auditor.pseudonyms, trail.auditor.span, trail.clock)
    with pytest.raises(OSError):
        await auditor.record_batch([_request(rid)])
    assert records.index == {}
    await auditor.record_batch([_request(rid, "request-extended.json")])
    entries = list(records.index.values())
    assert all(e["_id"] == f"{e['ref']}|request_id:{rid}" for e in entries)
    assert len(entries) == 2  # the subject's two identifiers
    assert len(await records.records_of_subject(entries[0]["ref"])) == 2
