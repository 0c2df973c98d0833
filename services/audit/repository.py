"""Audit storage: the hash-chained records, chain heads and the key vault."""

from __future__ import annotations

import base64
import contextlib
import secrets
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.mongo import IndexPlan

RECORDS, HEADS, VAULT = "records", "chain_heads", "vault"

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
