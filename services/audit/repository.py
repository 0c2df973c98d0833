"""Audit's storage behind a door: the Protocols the use cases, routes and verifier see.

Two implementations pass the same contract suites (``tests/contract/test_audit_*.py``):
MongoDB (``mongo.py``) and in memory (``memory.py``). Documents are plain dicts: records as
the chain hashes them, key and link documents as sealing reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

Doc = dict[str, Any]
LAST = 10**12 - 1  # the highest position ``chain_seq`` spells
REFS = ("request_id", "case_id", "breach_id")  # the aggregates a record can be looked up by
DELIVERY_STATES = ("pending", "delivered", "failed", "cancelled")


class PositionTaken(Exception):
    """An ordered insert stopped at a record already stored or a position already taken."""


def chain_seq(chain: str, seq: int) -> str:
    """The unique key of a chain position: a second writer at the same position fails."""
    return f"{chain}#{seq:012d}"


def aggregate_of(record: Doc) -> tuple[str, str] | None:
    """(field, value) of the first of ``REFS`` a record names: the aggregate it belongs to."""
    refs = record.get("refs") or {}
    for field in REFS:
        if refs.get(field) not in (None, ""):
            return field, str(refs[field])
    return None


def index_entries(records: list[Doc]) -> list[Doc]:
    """The subject-index entries of ``records``, each once: one per (subject ref, aggregate).

    A record naming none of ``REFS`` keeps an entry of its own (``record_id``): its subject
    is found through it alone. Readers follow both shapes (``lookups``).
    """
    entries: dict[str, Doc] = {}
    for record in records:
        aggregate = aggregate_of(record)
        for ref in record.get("subject_refs") or []:
            if aggregate is None:
                rid = record["_id"]
                entry: Doc = {"_id": f"{ref}|{rid}", "ref": ref, "record_id": rid}
            else:
                field, value = aggregate
                entry = {"_id": f"{ref}|{field}:{value}", "ref": ref}
                entry.update(field=field, value=value)
            entries.setdefault(entry["_id"], entry)
    return list(entries.values())


def lookups(entries: list[Doc]) -> tuple[set[str], dict[str, set[str]]]:
    """What a subject's entries point to: (record ids, aggregate values by ``REFS`` field)."""
    ids: set[str] = set()
    aggregates: dict[str, set[str]] = {}
    for entry in entries:
        if "record_id" in entry:  # a record naming no aggregate, or written before aggregates
            ids.add(str(entry["record_id"]))
        elif entry.get("field") in REFS:
            aggregates.setdefault(str(entry["field"]), set()).add(str(entry["value"]))
    return ids, aggregates


def about(ref: str, records: list[Doc], field: str) -> set[str]:
    """The ids of ``records`` (of one ``field`` aggregate) about the subject ``ref``: those
    naming it (a breach may hold others); in a request, those naming nobody too. A request is
    one subject's, and a record of it audited in the same poll as the one that linked the
    request to its subject (another partition) was sealed before the link existed."""
    return {
        str(r["_id"])
        for r in records
        if ref in (refs := r.get("subject_refs") or []) or (field == "request_id" and not refs)
    }


@dataclass(frozen=True)
class Selection:
    """Which records a reader asks for; ``ids`` (from the subject index) narrows them."""

    ids: list[str] | None = None
    request_id: str | None = None
    case_id: str | None = None
    breach_id: str | None = None
    type: str | None = None
    since: datetime | None = None  # recorded at or after
    before: datetime | None = None  # recorded strictly before


class RecordRepository(Protocol):
    """Hash-chained records, their chains' heads and the subject index."""

    async def head(self, chain: str) -> tuple[int, str] | None:
        """Last (seq, hash) of ``chain``, past the stored head if a crash left it behind."""
        ...

    async def all_heads(self) -> dict[str, tuple[int, str]]:
        """Every chain's stored head."""
        ...

    async def insert_records(self, records: list[Doc]) -> None:
        """Insert in order; stop at the first record already there or position taken
        (``PositionTaken``; the records before it stay)."""
        ...

    async def records_by_id(self, ids: list[str]) -> dict[str, Doc]:
        """The stored records among ``ids``."""
        ...

    async def advance_many(self, heads: list[Doc]) -> None:
        """Move chain heads forward, never back (``{"_id", "seq", "hash"}`` each)."""
        ...

    async def span(self, chain: str, first: int, last: int) -> list[Doc]:
        """Records at positions ``first..last`` of ``chain``, in order."""
        ...

    async def insert_index(self, entries: list[Doc]) -> None:
        """Add subject-index entries (idempotent: an entry already there is kept)."""
        ...

    async def records_of_subject(self, ref: str) -> list[str]:
        """Ids of every record about the subject with keyed hash ``ref``, sorted: the records
        of the aggregates its entries name that list ``ref`` among their ``subject_refs``,
        and those its per-record entries name."""
        ...

    async def page(
        self, selection: Selection, after: tuple[datetime, str] | None, limit: int
    ) -> list[Doc]:
        """Selected records by (recorded_at, _id) after ``after``, at most ``limit``."""
        ...

    async def naming(self, field: str, values: list[str]) -> list[Doc]:
        """Records whose ``refs[field]`` (one of ``REFS``) is one of ``values``."""
        ...


class KeyRepository(Protocol):
    """Subject keys (crypto-shredding), the links of aggregates to them, vault secrets."""

    async def secret(self, name: str) -> bytes:
        """A named random secret, created once (the first writer's wins)."""
        ...

    async def drop_secret(self, name: str) -> None:
        """Forget a retired secret."""
        ...

    async def subject_keys(self, ids: list[str]) -> dict[str, Doc]:
        """Key documents by id (destroyed ones have ``key`` None)."""
        ...

    async def insert_keys(self, docs: list[Doc]) -> bool:
        """Insert new key documents; False when some id was already stored (kept as is)."""
        ...

    async def destroy_keys(self, ids: list[str], now: datetime, upto: int) -> int:
        """Overwrite the key material of ``ids`` at generations ``<= upto``; how many lived."""
        ...

    async def renew_key(self, kid: str, replaced: int, fresh: Doc) -> bool:
        """Give destroyed generation ``replaced`` of ``kid`` its successor; False if taken."""
        ...

    async def write_links(self, docs: list[Doc]) -> None:
        """Store links: an aggregate keeps its first key and generation; refs only grow."""
        ...

    async def linked(self, names: list[str]) -> list[Doc]:
        """The link documents of ``names`` that exist."""
        ...


class CheckpointRepository(Protocol):
    """Signed chain heads."""

    async def add(self, doc: Doc) -> None:
        """Store a checkpoint (the same head signed twice is kept once)."""
        ...

    async def latest(self) -> dict[str, Doc]:
        """The highest checkpoint of every chain."""
        ...

    async def page(self, after: str | None, limit: int | None) -> list[Doc]:
        """Checkpoints in ``_id`` order after ``after`` (every one when ``limit`` is None)."""
        ...


class WebhookRepository(Protocol):
    """Webhook subscriptions; listings never carry the sealed secret."""

    async def add(self, doc: Doc) -> None: ...

    async def get(self, sub_id: str) -> Doc | None:
        """One subscription, its sealed secret included."""
        ...

    async def listed(self, *, active_only: bool = False) -> list[Doc]:
        """Subscriptions in id order, without their secrets."""
        ...

    async def remove(self, sub_id: str) -> bool: ...

    async def enable(self, sub_id: str) -> None:
        """Active again, its failure run forgotten."""
        ...

    async def succeeded(self, sub_id: str) -> None:
        """A delivery went through: the failure run ends."""
        ...

    async def failed(self, sub_id: str, now_ms: int) -> Doc | None:
        """Count one more failure (the run starts at ``now_ms``); the updated subscription."""
        ...

    async def disable(self, sub_id: str, at: datetime) -> bool:
        """Disable an active subscription; False when it was not active."""
        ...

    async def failing(self) -> dict[str, int]:
        """Consecutive failed deliveries of each active subscription (0 when it works)."""
        ...


class DeliveryRepository(Protocol):
    """Queued webhook deliveries and the log of their attempts."""

    async def enqueue(self, docs: list[Doc]) -> None:
        """Queue deliveries (one queued before keeps its state)."""
        ...

    async def claim(self, now_ms: int, lease_ms: int) -> Doc | None:
        """Lease the earliest due delivery until ``now_ms + lease_ms``."""
        ...

    async def delivered(self, delivery_id: str, status: int) -> None: ...

    async def failed(
        self, delivery_id: str, attempts: int, status: int | None, error: str, next_at: int | None
    ) -> None:
        """Record a failed attempt: retried at ``next_at``, or given up (``failed``) if None."""
        ...

    async def close(self, delivery_id: str, state: str, why: str) -> None:
        """End a delivery without sending it (``cancelled``)."""
        ...

    async def replay(self, delivery_id: str, sub_id: str, now_ms: int) -> bool:
        """Due again now; False when ``sub_id`` has no such delivery."""
        ...

    async def of_subscription(self, sub_id: str) -> list[Doc]: ...

    async def log_attempt(self, doc: Doc) -> None: ...

    async def attempts_of(self, delivery_ids: list[str]) -> list[Doc]: ...

    async def states(self, cap: int) -> dict[str, int]:
        """Deliveries by state (``DELIVERY_STATES``), each counted no further than ``cap``."""
        ...


@dataclass(frozen=True)
class Repositories:
    """Everything audit stores, as its parts receive it (bootstrap's door)."""

    records: RecordRepository
    keys: KeyRepository
    checkpoints: CheckpointRepository
    webhooks: WebhookRepository
    deliveries: DeliveryRepository
