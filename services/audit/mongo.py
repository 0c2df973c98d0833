"""Audit's repositories on MongoDB: records, heads, subject index, keys, links, checkpoints.

Times written by updates are ISO strings or epoch milliseconds: the embedded server stores a
datetime given to ``$set`` as text, which then no longer compares as a date.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.audit.mongo_webhooks import MongoDeliveries, MongoWebhooks
from services.audit.repository import (
    LAST,
    Doc,
    PositionTaken,
    Repositories,
    Selection,
    about,
    chain_seq,
    lookups,
)
from shared.mongo import IndexPlan, find_any

RECORDS, HEADS, VAULT, KEYS, LINKS = "records", "chain_heads", "vault", "subject_keys", "links"
# One entry per (subject ref, aggregate), or per record for a record naming no aggregate
# (``repository.index_entries``): the embedded server does not use an index for a query on
# an array field, so lookups by subject go through this scalar index, then the records'
# single-field ``refs.*`` indexes.
SUBJECT_INDEX = "subject_index"
CHECKPOINTS, WEBHOOKS, DELIVERIES = "checkpoints", "webhooks", "deliveries"
ATTEMPTS = "delivery_attempts"  # one document per attempt: pushed subdocuments become text
DUPLICATE_KEY = 11000

INDEXES = IndexPlan(
    {
        RECORDS: [
            # One index per query path (single-field: the embedded server ignores compound ones).
            IndexModel([("chain_seq", ASCENDING)], unique=True, name="chain_seq"),
            IndexModel([("refs.request_id", ASCENDING)], name="request_id", sparse=True),
            IndexModel([("refs.case_id", ASCENDING)], name="case_id", sparse=True),
            IndexModel([("refs.breach_id", ASCENDING)], name="breach_id", sparse=True),
            IndexModel([("type", ASCENDING)], name="type"),
            IndexModel([("recorded_at", ASCENDING)], name="recorded_at"),
        ],
        SUBJECT_INDEX: [IndexModel([("ref", ASCENDING)], name="ref")],
        CHECKPOINTS: [IndexModel([("chain", ASCENDING)], name="chain")],
        DELIVERIES: [
            IndexModel([("next_at", ASCENDING)], name="next_at", sparse=True),
            IndexModel([("sub_id", ASCENDING)], name="sub_id"),
        ],
        ATTEMPTS: [IndexModel([("delivery_id", ASCENDING)], name="delivery_id")],
    },
    # No query reads records by ``subject_refs`` (look-ups go through SUBJECT_INDEX); its
    # index cost every record insert.
    retired={RECORDS: ["subject_refs"]},
)


def selection_query(s: Selection) -> Doc:
    """The MongoDB filter of a selection: every part is served by a single-field index."""
    query: Doc = {} if s.ids is None else {"_id": {"$in": s.ids}}
    for field, value in (
        ("refs.request_id", s.request_id),
        ("refs.case_id", s.case_id),
        ("refs.breach_id", s.breach_id),
        ("type", s.type),
    ):
        if value:
            query[field] = value
    window = {k: v for k, v in (("$gte", s.since), ("$lt", s.before)) if v is not None}
    if window:
        query["recorded_at"] = window
    return query


class MongoRecords:
    """Records, chain heads and the scalar subject index."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.records, self.heads, self.index = db[RECORDS], db[HEADS], db[SUBJECT_INDEX]

    async def head(self, chain: str) -> tuple[int, str] | None:
        # A chain has no gaps (records are inserted in order, a batch stops at its first
        # conflict), so the record past the stored head with the highest position is the head.
        doc = await self.heads.find_one({"_id": chain})
        seq, digest = (int(doc["seq"]), str(doc["hash"])) if doc else (0, "")
        query = {"chain_seq": {"$gt": chain_seq(chain, seq), "$lte": chain_seq(chain, LAST)}}
        found = self.records.find(query, {"seq": 1, "hash": 1}).sort("chain_seq", DESCENDING)
        for last in await found.limit(1).to_list(1):
            seq, digest = int(last["seq"]), str(last["hash"])
        return (seq, digest) if seq else None

    async def all_heads(self) -> dict[str, tuple[int, str]]:
        return {str(d["_id"]): (int(d["seq"]), str(d["hash"])) async for d in self.heads.find()}

    async def insert_records(self, records: list[Doc]) -> None:
        try:
            await self.records.insert_many(records, ordered=True)
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise  # not a record already there nor a position taken: the store refuses
            raise PositionTaken(str(exc)) from exc

    async def records_by_id(self, ids: list[str]) -> dict[str, Doc]:
        if not ids:
            return {}
        return {str(d["_id"]): d async for d in self.records.find({"_id": {"$in": ids}})}

    async def advance_many(self, heads: list[Doc]) -> None:
        ops = [
            UpdateOne(
                {"_id": h["_id"], "seq": {"$lt": h["seq"]}},
                {"$set": {"seq": h["seq"], "hash": h["hash"]}},
                upsert=True,
            )
            for h in heads
        ]
        with contextlib.suppress(BulkWriteError):  # a head at or past seq: its upsert collides
            await self.heads.bulk_write(ops, ordered=False)

    async def span(self, chain: str, first: int, last: int) -> list[Doc]:
        query = {"chain_seq": {"$gte": chain_seq(chain, first), "$lte": chain_seq(chain, last)}}
        return [d async for d in self.records.find(query).sort("chain_seq", ASCENDING)]

    async def insert_index(self, entries: list[Doc]) -> None:
        unique = list({e["_id"]: e for e in entries}.values())  # several batches' at once
        if not unique:
            return
        try:
            await self.index.insert_many(unique, ordered=False)
        except BulkWriteError as exc:  # another replica's, or written before a crash
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    async def records_of_subject(self, ref: str) -> list[str]:
        ids, aggregates = lookups([d async for d in self.index.find({"ref": ref})])
        for field, values in sorted(aggregates.items()):
            for value in sorted(values):  # equality: the embedded server scans for ``$in``
                query = {f"refs.{field}": value}  # a single-field index each
                found = self.records.find(query, {"subject_refs": 1})
                ids |= about(ref, [d async for d in found], field)
        return sorted(ids)

    async def page(
        self, selection: Selection, after: tuple[datetime, str] | None, limit: int
    ) -> list[Doc]:
        query = selection_query(selection)
        if after is not None:
            at, rid = after
            # ``$and`` around the ``$or``: the embedded server drops the conditions that sit
            # beside a top-level ``$or`` (docs/devstack.md); on MongoDB both forms are the same.
            later = {
                "$or": [{"recorded_at": {"$gt": at}}, {"recorded_at": at, "_id": {"$gt": rid}}]
            }
            query = {"$and": [query, later]} if query else later
        found = self.records.find(query).sort([("recorded_at", 1), ("_id", 1)]).limit(limit)
        return [d async for d in found]

    async def naming(self, field: str, values: list[str]) -> list[Doc]:
        return await find_any(self.records, f"refs.{field}", values)


class MongoKeys:
    """Subject keys, links and the vault."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.keys, self.links, self.vault = db[KEYS], db[LINKS], db[VAULT]

    async def secret(self, name: str) -> bytes:
        doc = await self.vault.find_one({"_id": name})
        if doc is None:
            value = base64.b64encode(secrets.token_bytes(32)).decode()
            with contextlib.suppress(DuplicateKeyError):  # another replica created it first
                await self.vault.insert_one({"_id": name, "key": value})
            doc = await self.vault.find_one({"_id": name})
        assert doc is not None
        return base64.b64decode(str(doc["key"]))

    async def drop_secret(self, name: str) -> None:
        await self.vault.delete_one({"_id": name})

    async def subject_keys(self, ids: list[str]) -> dict[str, Doc]:
        if not ids:
            return {}
        return {str(d["_id"]): d async for d in self.keys.find({"_id": {"$in": ids}})}

    async def insert_keys(self, docs: list[Doc]) -> bool:
        if not docs:
            return True
        try:
            await self.keys.insert_many(docs, ordered=False)
        except BulkWriteError:
            return False
        return True

    async def destroy_keys(self, ids: list[str], now: datetime, upto: int) -> int:
        # The bound keeps a re-delivered closure of an old case from destroying the key of a
        # relationship that began after it.
        if not ids:
            return 0
        done = await self.keys.update_many(
            {"_id": {"$in": ids}, "key": {"$ne": None}, "gen": {"$lte": upto}},
            {"$set": {"key": None, "destroyed_at": now.isoformat()}},
        )
        return int(done.modified_count)

    async def renew_key(self, kid: str, replaced: int, fresh: Doc) -> bool:
        done = await self.keys.update_one(
            {"_id": kid, "key": None, "gen": replaced},
            {"$set": {k: v for k, v in fresh.items() if k != "_id"}},
        )
        return bool(done.matched_count)

    async def write_links(self, docs: list[Doc]) -> None:
        if not docs:
            return
        ops = [
            UpdateOne(
                {"_id": d["_id"]},
                {
                    "$setOnInsert": {"key_id": d["key_id"], "gen": d["gen"]},
                    "$addToSet": {"refs": {"$each": list(d["refs"])}},
                },
                upsert=True,
            )
            for d in docs
        ]
        await self.links.bulk_write(ops, ordered=False)

    async def linked(self, names: list[str]) -> list[Doc]:
        return [d async for d in self.links.find({"_id": {"$in": names}})]


class MongoCheckpoints:
    """Signed checkpoints, one document per signed head."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.checkpoints = db[CHECKPOINTS]

    async def add(self, doc: Doc) -> None:
        with contextlib.suppress(DuplicateKeyError):  # the same head signed twice
            await self.checkpoints.insert_one(doc)

    async def latest(self) -> dict[str, Doc]:
        latest: dict[str, Doc] = {}
        async for d in self.checkpoints.find().sort("seq", DESCENDING):
            latest.setdefault(str(d["chain"]), d)
        return latest

    async def page(self, after: str | None, limit: int | None) -> list[Doc]:
        found = self.checkpoints.find({"_id": {"$gt": after}} if after else {}).sort("_id", 1)
        return [d async for d in (found.limit(limit) if limit else found)]


def mongo_repositories(db: AsyncDatabase[dict[str, Any]]) -> Repositories:
    """Audit's MongoDB repositories on ``db``."""
    return Repositories(
        MongoRecords(db),
        MongoKeys(db),
        MongoCheckpoints(db),
        MongoWebhooks(db[WEBHOOKS]),
        MongoDeliveries(db[DELIVERIES], db[ATTEMPTS]),
    )
