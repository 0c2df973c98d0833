"""One contract for audit's RecordRepository, run on the in-memory fake and on MongoDB."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.audit.memory import MemoryRecords
from services.audit.mongo import INDEXES, MongoRecords
from services.audit.repository import (
    PositionTaken,
    RecordRepository,
    Selection,
    chain_seq,
    index_entries,
)
from shared.mongo import service_database
from shared.settings import Settings

AT = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


def rec(chain: str, seq: int, **fields: Any) -> dict[str, Any]:
    doc = {"_id": f"{chain}|{seq}", "chain": chain, "seq": seq, "hash": f"h{seq}"}
    doc.update(chain_seq=chain_seq(chain, seq), recorded_at=AT + timedelta(seconds=seq))
    return {"type": "t", "refs": {}, "subject_refs": [], **doc, **fields}


def per_record(ref: str, docs: list[dict[str, Any]]) -> list[str]:
    """The answer of the first index (one entry per subject ref and record)."""
    return sorted(d["_id"] for d in docs if ref in d["subject_refs"])


def test_the_records_of_one_aggregate_make_one_entry_per_subject() -> None:
    docs = [
        rec("c/a", i, refs={"request_id": "R", "timer_id": f"t{i}"}, subject_refs=["a", "b"])
        for i in range(1, 6)
    ]
    docs.append(rec("c/a", 6, refs={"case_id": "K", "command_id": "K:crm"}, subject_refs=["a"]))
    docs.append(rec("c/a", 7, refs={"system": "crm"}, subject_refs=["a"]))  # no aggregate
    assert sorted(e["_id"] for e in index_entries(docs)) == [
        "a|c/a|7",
        "a|case_id:K",
        "a|request_id:R",
        "b|request_id:R",
    ]


class RecordContract:
    @pytest.fixture
    def repo(self) -> RecordRepository:
        raise NotImplementedError

    async def test_an_insert_stops_at_a_taken_position(self, repo: RecordRepository) -> None:
        await repo.insert_records([rec("c/0", 1), rec("c/0", 2)])
        clash = {**rec("c/0", 4), "_id": "x", "chain_seq": chain_seq("c/0", 2)}
        with pytest.raises(PositionTaken):
            await repo.insert_records([rec("c/0", 3), clash, rec("c/0", 5)])
        assert sorted(await repo.records_by_id(["c/0|1", "c/0|3", "c/0|5"])) == ["c/0|1", "c/0|3"]
        with pytest.raises(PositionTaken):
            await repo.insert_records([rec("c/0", 1)])  # a record already there

    async def test_the_head_is_repaired_past_the_stored_one(self, repo: RecordRepository) -> None:
        assert await repo.head("c/1") is None
        await repo.insert_records([rec("c/1", 1), rec("c/1", 2), rec("c/1", 3)])
        await repo.advance_many([{"_id": "c/1", "seq": 1, "hash": "h1"}])
        assert await repo.head("c/1") == (3, "h3")  # a crash left the stored head behind
        await repo.advance_many([{"_id": "c/1", "seq": 3, "hash": "h3"}])
        await repo.advance_many([{"_id": "c/1", "seq": 2, "hash": "h2"}])  # never back
        assert (await repo.all_heads())["c/1"] == (3, "h3")

    async def test_a_span_is_one_chain_in_order(self, repo: RecordRepository) -> None:
        await repo.insert_records([rec("c/2", 1), rec("c/2", 2), rec("c/20", 1), rec("c/2", 3)])
        assert [d["seq"] for d in await repo.span("c/2", 2, 10)] == [2, 3]

    async def test_the_subject_index_is_idempotent(self, repo: RecordRepository) -> None:
        doc = rec("c/3", 1, subject_refs=["ref-a", "ref-b"])
        await repo.insert_records([doc])
        await repo.insert_index(index_entries([doc]))
        await repo.insert_index(index_entries([doc]))  # after a crash: written again
        assert await repo.records_of_subject("ref-a") == ["c/3|1"]
        assert await repo.records_of_subject("ref-z") == []

    async def test_a_subject_is_found_through_its_aggregates_and_only_its_records(
        self, repo: RecordRepository
    ) -> None:
        u = uuid.uuid4().hex[:8]  # the MongoDB trail is shared by the session
        a, b, c = f"a{u}", f"b{u}", f"c{u}"
        breach, request = f"B{u}", f"R{u}"
        docs = [
            rec(f"c/6{u}", 1, refs={"breach_id": breach}, subject_refs=[a, b]),  # names two
            rec(f"c/6{u}", 2, refs={"breach_id": breach}, subject_refs=[c]),  # not a nor b
            rec(f"c/6{u}", 3, refs={"breach_id": breach}, subject_refs=[]),
            rec(f"c/6{u}", 4, refs={"request_id": request}, subject_refs=[a]),
            rec(f"c/6{u}", 5, refs={"request_id": request, "case_id": "K"}, subject_refs=[a]),
        ]
        await repo.insert_records(docs)
        await repo.insert_index(index_entries(docs))
        assert await repo.records_of_subject(a) == [f"c/6{u}|1", f"c/6{u}|4", f"c/6{u}|5"]
        assert await repo.records_of_subject(b) == [f"c/6{u}|1"]
        assert await repo.records_of_subject(c) == [f"c/6{u}|2"]

    async def test_a_record_of_the_request_sealed_before_its_link_is_found(
        self, repo: RecordRepository
    ) -> None:
        # Audited in the same poll as the receipt (another partition), an ``extended`` event
        # found no link from the request to its subject yet: it names nobody.
        u = uuid.uuid4().hex[:8]
        received = rec(f"c/9{u}", 1, refs={"request_id": f"R{u}"}, subject_refs=[f"a{u}"])
        extended = rec(f"c/9{u}", 2, refs={"request_id": f"R{u}"}, subject_refs=[])
        other = rec(f"c/9{u}", 3, refs={"breach_id": f"B{u}"}, subject_refs=[])
        mine = rec(f"c/9{u}", 4, refs={"breach_id": f"B{u}"}, subject_refs=[f"a{u}"])
        docs = [received, extended, other, mine]
        await repo.insert_records(docs)
        await repo.insert_index(index_entries(docs))
        expected = [received["_id"], extended["_id"], mine["_id"]]
        assert await repo.records_of_subject(f"a{u}") == expected

    async def test_the_answer_is_the_per_record_one(self, repo: RecordRepository) -> None:
        u, rng = uuid.uuid4().hex[:8], random.Random(11)
        subjects = [f"s{i}{u}" for i in range(6)]
        kinds = [{"request_id": f"R{u}"}, {"case_id": f"K{u}"}, {"breach_id": f"B{u}"}, {}]
        docs = []
        for seq in range(1, 61):
            refs = {**rng.choice(kinds), **rng.choice([{}, {"case_id": f"L{u}"}])}
            named = rng.sample(subjects, rng.randrange(1 if "request_id" in refs else 0, 3))
            docs.append(rec(f"c/7{u}", seq, refs=refs, subject_refs=named))
        await repo.insert_records(docs)
        for first in range(0, 60, 7):  # batch by batch, as the writer stores them
            await repo.insert_index(index_entries(docs[first : first + 7]))
        for ref in subjects:
            assert await repo.records_of_subject(ref) == per_record(ref, docs), ref

    async def test_entries_written_per_record_are_still_followed(
        self, repo: RecordRepository
    ) -> None:
        u = uuid.uuid4().hex[:8]
        old = rec(f"c/8{u}", 1, refs={"request_id": f"R{u}"}, subject_refs=[f"a{u}"])
        new = rec(f"c/8{u}", 2, refs={"case_id": f"K{u}"}, subject_refs=[f"a{u}"])
        await repo.insert_records([old, new])
        # The first index's shape: one entry per (subject ref, record), whatever its refs.
        legacy = {"_id": f"a{u}|{old['_id']}", "ref": f"a{u}", "record_id": old["_id"]}
        await repo.insert_index([legacy, *index_entries([new])])
        assert await repo.records_of_subject(f"a{u}") == [old["_id"], new["_id"]]

    async def test_pages_follow_the_selection_and_the_cursor(self, repo: RecordRepository) -> None:
        docs = [
            rec("c/4", i, type="a" if i % 2 else "b", refs={"case_id": f"K{i % 3}"})
            for i in range(1, 9)
        ]
        await repo.insert_records(docs)
        odd = await repo.page(Selection(type="a"), None, 2)
        assert [d["seq"] for d in odd] == [1, 3]
        after = (odd[-1]["recorded_at"], odd[-1]["_id"])
        assert [d["seq"] for d in await repo.page(Selection(type="a"), after, 10)] == [5, 7]
        window = Selection(since=AT + timedelta(seconds=2), before=AT + timedelta(seconds=4))
        assert [d["seq"] for d in await repo.page(window, None, 10)] == [2, 3]
        chosen = Selection(ids=["c/4|1", "c/4|4"], case_id="K1")
        assert [d["seq"] for d in await repo.page(chosen, None, 10)] == [1, 4]

    async def test_records_are_found_by_the_aggregates_they_name(
        self, repo: RecordRepository
    ) -> None:
        await repo.insert_records(
            [
                rec("c/5", 1, refs={"request_id": "R1"}),
                rec("c/5", 2, refs={"request_id": "R1", "case_id": "K"}),
                rec("c/5", 3, refs={"case_id": "L"}),
            ]
        )
        assert sorted(d["seq"] for d in await repo.naming("request_id", ["R1"])) == [1, 2]
        assert sorted(d["seq"] for d in await repo.naming("case_id", ["K", "L"])) == [2, 3]


class TestMemoryRecords(RecordContract):
    @pytest.fixture
    def repo(self) -> RecordRepository:
        return MemoryRecords()


@pytest.mark.integration
class TestMongoRecords(RecordContract):
    @pytest.fixture
    async def repo(self, settings: Settings, mongo_client: Any) -> RecordRepository:
        db = service_database(mongo_client, settings, "audit")
        await INDEXES.apply(db)
        return MongoRecords(db)
