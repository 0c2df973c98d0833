"""Audit storage: hash-chained records, chain heads, vault, subject keys, checkpoints.

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

from shared.figures import capped_count
from shared.mongo import IndexPlan

RECORDS, HEADS, VAULT, KEYS, LINKS = "records", "chain_heads", "vault", "subject_keys", "links"
# One entry per (subject ref, record): the embedded server does not use an index for a
# query on an array field, so lookups by subject go through this scalar index instead.
SUBJECT_INDEX = "subject_index"
CHECKPOINTS, WEBHOOKS, DELIVERIES = "checkpoints", "webhooks", "deliveries"
ATTEMPTS = "delivery_attempts"  # one document per attempt: pushed subdocuments become text

INDEXES = IndexPlan(
    {
        RECORDS: [
            # One index per query path (single-field: the embedded server ignores compound ones).
            IndexModel([("chain_seq", ASCENDING)], unique=True, name="chain_seq"),
            IndexModel([("refs.request_id", ASCENDING)], name="request_id", sparse=True),
            IndexModel([("refs.case_id", ASCENDING)], name="case_id", sparse=True),
            IndexModel([("refs.breach_id", ASCENDING)], name="breach_id", sparse=True),
            IndexModel([("subject_refs", ASCENDING)], name="subject_refs"),
            IndexModel([("type", ASCENDING)], name="type"),
            IndexModel([("recorded_at", ASCENDING)], name="recorded_at"),
        ],
        SUBJECT_INDEX: [IndexModel([("ref", ASCENDING)], name="ref")],
        CHECKPOINTS: [IndexModel([("chain", ASCENDING)], name="chain")],
        DELIVERIES: [
            IndexModel([("next_at", ASCENDING)], name="next_at", sparse=True),
            IndexModel([("sub_id", ASCENDING)], name="sub_id"),
            IndexModel([("state", ASCENDING)], name="state"),  # the deliveries gauge
        ],
        ATTEMPTS: [IndexModel([("delivery_id", ASCENDING)], name="delivery_id")],
    }
)


DELIVERY_STATES = ("pending", "delivered", "failed", "cancelled")
LAST = 10**12 - 1  # the highest position ``chain_seq`` spells


def chain_seq(chain: str, seq: int) -> str:
    """The unique key of a chain position: a second writer at the same position fails."""
    return f"{chain}#{seq:012d}"


def index_entries(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The subject-index entries of ``records``: one per (subject ref, record)."""
    return [
        {"_id": f"{ref}|{record['_id']}", "ref": ref, "record_id": record["_id"]}
        for record in records
        for ref in record.get("subject_refs") or []
    ]


class AuditStore:
    """MongoDB implementation of the audit log."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.records = db[RECORDS]
        self.heads = db[HEADS]
        self.vault = db[VAULT]
        self.keys = db[KEYS]
        self.subject_index = db[SUBJECT_INDEX]
        self.links = db[LINKS]
        self.checkpoints = db[CHECKPOINTS]
        self.webhooks = db[WEBHOOKS]
        self.deliveries = db[DELIVERIES]
        self.attempts = db[ATTEMPTS]

    async def secret(self, name: str) -> bytes:
        """A named random secret, created once and kept in the vault."""
        doc = await self.vault.find_one({"_id": name})
        if doc is None:
            value = base64.b64encode(secrets.token_bytes(32)).decode()
            with contextlib.suppress(DuplicateKeyError):  # another replica created it first
                await self.vault.insert_one({"_id": name, "key": value})
            doc = await self.vault.find_one({"_id": name})
        assert doc is not None
        return base64.b64decode(str(doc["key"]))

    async def delivery_states(self, cap: int) -> dict[str, int]:
        """Webhook deliveries by state, each counted no further than ``cap``."""
        return {s: await capped_count(self.deliveries, {"state": s}, cap) for s in DELIVERY_STATES}

    async def failing_webhooks(self) -> dict[str, int]:
        """Consecutive failed deliveries of each active subscription (0 when it works)."""
        found = self.webhooks.find({"state": "active"}, {"consecutive_failures": 1})
        return {str(d["_id"]): int(d.get("consecutive_failures") or 0) async for d in found}

    async def exists(self, record_id: str) -> bool:
        return await self.records.find_one({"_id": record_id}, {"_id": 1}) is not None

    async def head(self, chain: str) -> tuple[int, str] | None:
        """Last (seq, hash) recorded for ``chain``, repaired if a crash left it behind.

        A chain has no gaps (records are inserted in order, a batch stops at its first
        conflict), so the record past the stored head with the highest position is the head.
        """
        doc = await self.heads.find_one({"_id": chain})
        seq, digest = (int(doc["seq"]), str(doc["hash"])) if doc else (0, "")
        query = {"chain_seq": {"$gt": chain_seq(chain, seq), "$lte": chain_seq(chain, LAST)}}
        found = self.records.find(query, {"seq": 1, "hash": 1}).sort("chain_seq", DESCENDING)
        for last in await found.limit(1).to_list(1):
            seq, digest = int(last["seq"]), str(last["hash"])
        return (seq, digest) if seq else None

    async def all_heads(self) -> dict[str, tuple[int, str]]:
        """Every chain's stored head."""
        return {str(d["_id"]): (int(d["seq"]), str(d["hash"])) async for d in self.heads.find()}

    async def insert(self, record: dict[str, Any]) -> None:
        await self.records.insert_one(record)

    async def insert_records(self, records: list[dict[str, Any]]) -> None:
        """One ordered insert: it stops at the first record already there (``_id``) or at a
        position another writer took (``chain_seq``), raising ``BulkWriteError``."""
        await self.records.insert_many(records, ordered=True)

    async def records_by_id(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored records among ``ids``."""
        if not ids:
            return {}
        return {str(d["_id"]): d async for d in self.records.find({"_id": {"$in": ids}})}

    async def advance_many(self, heads: list[dict[str, Any]]) -> None:
        """Move several chain heads forward at once (``{"_id", "seq", "hash"}`` each)."""
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

    async def advance(self, chain: str, seq: int, digest: str) -> None:
        """Move the chain head forward (never back)."""
        moved = await self.heads.update_one(
            {"_id": chain, "seq": {"$lt": seq}}, {"$set": {"seq": seq, "hash": digest}}
        )
        if moved.matched_count == 0:
            with contextlib.suppress(DuplicateKeyError):  # a head at or past seq exists
                await self.heads.insert_one({"_id": chain, "seq": seq, "hash": digest})

    async def span(self, chain: str, first: int, last: int) -> list[dict[str, Any]]:
        """Records at positions ``first..last`` of ``chain``, in order: one range query."""
        query = {"chain_seq": {"$gte": chain_seq(chain, first), "$lte": chain_seq(chain, last)}}
        return [d async for d in self.records.find(query).sort("chain_seq", ASCENDING)]

    # Subject keys (crypto-shredding) -------------------------------------------------------

    async def subject_keys(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Key documents by id (destroyed ones have ``key`` None)."""
        if not ids:
            return {}
        return {str(d["_id"]): d async for d in self.keys.find({"_id": {"$in": ids}})}

    async def destroy_keys(self, ids: list[str], now: datetime, upto: int) -> int:
        """Overwrite the key material of ``ids`` at generations ``<= upto``; how many were live.

        The bound keeps a re-delivered closure of an old case from destroying the key of a
        relationship that began after it.
        """
        if not ids:
            return 0
        done = await self.keys.update_many(
            {"_id": {"$in": ids}, "key": {"$ne": None}, "gen": {"$lte": upto}},
            {"$set": {"key": None, "destroyed_at": now.isoformat()}},
        )
        return int(done.modified_count)

    async def index_subjects(self, *records: dict[str, Any]) -> None:
        """Make ``records`` findable by each of their subject refs (one write, idempotent)."""
        await self.insert_index(index_entries(list(records)))

    async def insert_index(self, entries: list[dict[str, Any]]) -> None:
        if entries:
            with contextlib.suppress(BulkWriteError):  # entries written before a crash
                await self.subject_index.insert_many(entries, ordered=False)

    async def records_of_subject(self, ref: str) -> list[str]:
        """Ids of every record about the subject with keyed hash ``ref``."""
        return [str(d["record_id"]) async for d in self.subject_index.find({"ref": ref})]

    async def write_links(self, docs: list[dict[str, Any]]) -> None:
        """Store link documents: an aggregate keeps the key and generation it was first
        linked to; refs only grow. One bulk write."""
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

    async def renew_key(self, kid: str, replaced: int, fresh: dict[str, Any]) -> bool:
        """Give destroyed generation ``replaced`` of ``kid`` its successor; False if taken."""
        done = await self.keys.update_one(
            {"_id": kid, "key": None, "gen": replaced},
            {"$set": {k: v for k, v in fresh.items() if k != "_id"}},
        )
        return bool(done.matched_count)

    async def linked(self, names: list[str]) -> list[dict[str, Any]]:
        return [d async for d in self.links.find({"_id": {"$in": names}})]

    # Checkpoints ------------------------------------------------------------------------------

    async def add_checkpoint(self, doc: dict[str, Any]) -> None:
        with contextlib.suppress(DuplicateKeyError):  # the same head signed twice
            await self.checkpoints.insert_one(doc)

    async def checkpoints_of(self, chain: str) -> list[dict[str, Any]]:
        found = self.checkpoints.find({"chain": chain}).sort("seq", ASCENDING)
        return [d async for d in found]

    async def latest_checkpoints(self) -> dict[str, dict[str, Any]]:
        """The highest checkpoint of every chain."""
        latest: dict[str, dict[str, Any]] = {}
        async for d in self.checkpoints.find().sort("seq", DESCENDING):
            latest.setdefault(str(d["chain"]), d)
        return latest
