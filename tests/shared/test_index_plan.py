"""IndexPlan on the embedded server: indexes created, retired ones dropped whatever their name."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pymongo import IndexModel

from services.audit.mongo import INDEXES as AUDIT_INDEXES
from services.audit.mongo import RECORDS
from shared.mongo import IndexPlan

pytestmark = pytest.mark.integration


def keys(info: dict[str, Any]) -> list[list[tuple[str, int]]]:
    return sorted(list(i["key"]) for i in info.values())


async def test_retired_indexes_are_dropped_and_the_others_kept(mongo_client: Any) -> None:
    db = mongo_client[f"plan_{uuid.uuid4().hex[:8]}"]
    await db["c"].create_index("old", name="whatever")
    plan = IndexPlan({"c": [IndexModel([("new", 1)], name="new")]}, retired={"c": ["old"]})
    await plan.apply(db)
    await plan.apply(db)  # idempotent
    assert keys(await db["c"].index_information()) == [[("_id", 1)], [("new", 1)]]
    await mongo_client.drop_database(db.name)


async def test_audit_records_no_longer_index_their_subject_refs(mongo_client: Any) -> None:
    db = mongo_client[f"plan_{uuid.uuid4().hex[:8]}"]
    await db[RECORDS].create_index("subject_refs", name="subject_refs")  # a trail from before
    await AUDIT_INDEXES.apply(db)
    found = keys(await db[RECORDS].index_information())
    assert [("subject_refs", 1)] not in found and [("chain_seq", 1)] in found
    await mongo_client.drop_database(db.name)
