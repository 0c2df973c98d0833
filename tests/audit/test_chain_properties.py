"""Property tests of the pure hash chain: any single change is found at the right place."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.audit import chain as chains
from services.audit.repository import chain_seq

CHAIN = "gdpr.requests.v1/0"
payloads = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(st.integers(), st.text(max_size=20), st.booleans(), st.none()),
    max_size=4,
)


def build(datas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    records, prev = [], chains.GENESIS
    for i, data in enumerate(datas, start=1):
        rec = {"_id": f"r{i}", "chain": CHAIN, "seq": i, "prev_hash": prev, "data": data}
        rec["chain_seq"] = chain_seq(CHAIN, i)
        rec["hash"] = chains.record_hash(rec)
        records.append(rec)
        prev = rec["hash"]
    return records


@settings(max_examples=60, deadline=None)
@given(st.lists(payloads, min_size=1, max_size=20))
def test_an_untouched_chain_verifies(datas: list[dict[str, Any]]) -> None:
    records = build(datas)
    last, digest, problem = chains.verify(CHAIN, records)
    assert problem is None
    assert (last, digest) == (len(records), records[-1]["hash"])


@settings(max_examples=60, deadline=None)
@given(st.lists(payloads, min_size=2, max_size=20), st.data())
def test_an_altered_record_is_named(datas: list[dict[str, Any]], data: st.DataObject) -> None:
    records = build(datas)
    i = data.draw(st.integers(0, len(records) - 1))
    records[i]["data"] = {**records[i]["data"], "tampered": True}
    _, _, problem = chains.verify(CHAIN, records)
    assert problem is not None
    assert (problem.seq, problem.kind, problem.record_id) == (i + 1, "altered", f"r{i + 1}")


@settings(max_examples=60, deadline=None)
@given(st.lists(payloads, min_size=2, max_size=20), st.data())
def test_a_deleted_record_is_named(datas: list[dict[str, Any]], data: st.DataObject) -> None:
    records = build(datas)
    i = data.draw(st.integers(0, len(records) - 2))  # deleting the last needs the head
    del records[i]
    _, _, problem = chains.verify(CHAIN, records)
    assert problem is not None
    assert (problem.seq, problem.kind) == (i + 1, "missing")


@settings(max_examples=60, deadline=None)
@given(st.lists(payloads, min_size=2, max_size=20), st.data())
def test_swapped_records_are_named(datas: list[dict[str, Any]], data: st.DataObject) -> None:
    records = build(datas)
    i = data.draw(st.integers(0, len(records) - 2))
    j = data.draw(st.integers(i + 1, len(records) - 1))
    records[i], records[j] = records[j], records[i]
    records[i]["chain_seq"], records[j]["chain_seq"] = (
        records[j]["chain_seq"],
        records[i]["chain_seq"],
    )  # as stored: each position keeps its key, the contents moved
    _, _, problem = chains.verify(CHAIN, records)
    assert problem is not None
    assert (problem.seq, problem.kind) == (i + 1, "reordered")


@settings(max_examples=40, deadline=None)
@given(st.lists(payloads, min_size=1, max_size=10), st.integers(1, 10))
def test_a_rewritten_link_is_a_broken_link(datas: list[dict[str, Any]], at: int) -> None:
    records = build(datas)
    i = min(at, len(records)) - 1
    records[i]["prev_hash"] = "f" * 64
    records[i]["hash"] = chains.record_hash(records[i])  # re-hashed, so only the link is off
    _, _, problem = chains.verify(CHAIN, records)
    assert problem is not None
    assert (problem.seq, problem.kind) == (i + 1, "broken_link")


@given(st.lists(payloads, min_size=1, max_size=10))
def test_hash_ignores_storage_id_but_covers_everything_else(datas: list[dict[str, Any]]) -> None:
    rec = build(datas)[0]
    assert chains.record_hash({**rec, "_id": "other"}) == rec["hash"]
    assert chains.record_hash({**rec, "seq": 99}) != rec["hash"]
