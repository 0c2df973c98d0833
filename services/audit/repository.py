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

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.audit import crypto
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
        ],
        ATTEMPTS: [IndexModel([("delivery_id", ASCENDING)], name="delivery_id")],
    }
)


def chain_seq(chain: str, seq: int) -> str:
    """The unique key of a chain position: a second writer at the same position fails."""
    return f"{chain}#{seq:012d}"


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

    async def exists(self, record_id: str) -> bool:
        return await self.records.find_one({"_id": record_id}, {"_id": 1}) is not None

    async def head(self, chain: str) -> tuple[int, str] | None:
        """Last (seq, hash) recorded for ``chain``, repaired if a crash left it behind."""
        doc = await self.heads.find_one({"_id": chain})
        seq, digest = (int(doc["seq"]), str(doc["hash"])) if doc else (0, "")
        while True:
            nxt = await self.records.find_one({"chain_seq": chain_seq(chain, seq + 1)})
            if nxt is None:
                break
            seq, digest = seq + 1, str(nxt["hash"])
        return (seq, digest) if seq else None

    async def all_heads(self) -> dict[str, tuple[int, str]]:
        """Every chain's stored head."""
        return {str(d["_id"]): (int(d["seq"]), str(d["hash"])) async for d in self.heads.find()}

    async def insert(self, record: dict[str, Any]) -> None:
        await self.records.insert_one(record)

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

    async def key_state(self, kid: str) -> tuple[int, bool] | None:
        """(current generation, live) of key ``kid``, or None before its first use."""
        doc = await self.keys.find_one({"_id": kid})
        return None if doc is None else (int(doc.get("gen", 1)), bool(doc.get("key")))

    async def key_at(self, kid: str, gen: int, now: datetime) -> bytes | None:
        """The material of generation ``gen`` of key ``kid``, or None if it was destroyed.

        Generation 1 is created on first use; generation ``n + 1`` only replaces a destroyed
        generation ``n`` (a new relationship, see ``usecases.Auditor``); a destroyed or
        superseded generation is never re-created.
        """
        for _ in range(5):
            doc = await self.keys.find_one({"_id": kid})
            current = int(doc.get("gen", 1)) if doc else 0
            if doc is not None and doc.get("key") and current == gen:
                return crypto.unb64(str(doc["key"]))
            fresh = {"key": crypto.b64(crypto.new_key()), "gen": gen, "at": now.isoformat()}
            if doc is None and gen == 1:
                with contextlib.suppress(DuplicateKeyError):
                    await self.keys.insert_one({"_id": kid, **fresh})
            elif doc is not None and not doc.get("key") and current + 1 == gen:
                await self.keys.update_one(
                    {"_id": kid, "key": None, "gen": current}, {"$set": fresh}
                )
            else:
                return None
        raise RuntimeError(f"subject key {kid} could not be settled")

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

    async def index_subjects(self, record: dict[str, Any]) -> None:
        """Make ``record`` findable by each of its subject refs (idempotent)."""
        entries = [
            {"_id": f"{ref}|{record['_id']}", "ref": ref, "record_id": record["_id"]}
            for ref in record.get("subject_refs") or []
        ]
        if entries:
            with contextlib.suppress(BulkWriteError):  # entries written before a crash
                await self.subject_index.insert_many(entries, ordered=False)

    async def records_of_subject(self, ref: str) -> list[str]:
        """Ids of every record about the subject with keyed hash ``ref``."""
        return [str(d["record_id"]) async for d in self.subject_index.find({"ref": ref})]

    async def link(self, names: list[str], key_id: str, refs: list[str], gen: int) -> None:
        """Remember that aggregates ``names`` concern the subject ``key_id`` (refs ``refs``).

        An aggregate keeps the subject key and generation it was first linked to.
        """
        for name in names:
            await self.links.update_one(
                {"_id": name},
                {
                    "$setOnInsert": {"key_id": key_id, "gen": gen},
                    "$addToSet": {"refs": {"$each": refs}},
                },
                upsert=True,
            )

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
