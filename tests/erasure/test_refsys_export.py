"""The reference systems' export shapes, read back by the package side's parser."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bson import ObjectId

from examples.connected_systems.export import CONTENT_TYPE, SHAPES, encode, record
from examples.connected_systems.records import CUSTOMERS, PROFILES
from services.erasure.records import RecordParser

DOC = {
    "_id": ObjectId(),
    "email": "a@example.org",
    "name": "A",
    "at": datetime(2027, 1, 2, tzinfo=UTC),
}


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_every_shape_parses_to_the_records_sent(kind: str) -> None:
    shape = SHAPES[kind]
    store = PROFILES if kind == "vendor" else CUSTOMERS
    records = [record("profile", store, DOC, shape), record("contact", store, DOC, shape)]
    body = encode(records, shape)
    parser = RecordParser(CONTENT_TYPE.get(shape, "application/json"))
    parsed = [r for n in range(0, len(body), 5) for r in parser.feed(body[n : n + 5])]
    assert parsed + parser.close() == records
    assert all("_id" not in r for r in records) and records[0]["category"] == "profile"


def test_the_vendor_nests_what_it_observed() -> None:
    nested = record("behaviour", PROFILES, DOC, "nested")
    assert nested["email"] == "a@example.org"
    assert nested["profile"] == {"name": "A", "at": "2027-01-02T00:00:00+00:00"}
