"""Audit use cases: append every delivered record to its partition's hash chain."""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.audit import chain as chains
from services.audit import domain
from services.audit.repository import AuditStore, chain_seq
from shared import topics
from shared.errors import EventRejected, TransientError
from shared.events import parse_event
from shared.messaging import DLQ_REASON, DLQ_SERVICE, DLQ_TOPIC, Delivery
from shared.service import Runtime

HMAC_SECRET = "subject-hmac"  # noqa: S105 - the vault entry name, not a secret


class Auditor:
    """Appends audit records; one writer per chain inside this process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._heads: dict[str, tuple[int, str]] = {}
        self._hmac_key: bytes | None = None

    @property
    def store(self) -> AuditStore:
        return AuditStore(self.runtime.db)

    async def hmac_key(self) -> bytes:
        if self._hmac_key is None:
            self._hmac_key = await self.store.secret(HMAC_SECRET)
        return self._hmac_key

    async def subject_ref(self, identifier: str) -> str:
        """The keyed hash a DPO's identifier is looked up by."""
        return domain.subject_ref(await self.hmac_key(), identifier)

    async def record(self, delivery: Delivery) -> None:
        """Audit one delivered record exactly once (re-deliveries are recognised)."""
        entry = await self._entry(delivery)
        if entry is None:
            return
        with self.runtime.span("audit.append") as span:
            span.set_attribute("gardien.audit.chain", f"{delivery.topic}/{delivery.partition}")
            if "request_id" in entry["refs"]:
                span.set_attribute("gardien.request_id", entry["refs"]["request_id"])
            await self._append(f"{delivery.topic}/{delivery.partition}", entry)

    async def _entry(self, d: Delivery) -> dict[str, Any] | None:
        """The record body (before chaining), or None for an invalid non-DLQ record."""
        now = datetime.now(UTC)
        if d.topic.endswith(topics.DLQ_SUFFIX):
            return self._rejection(d, now)
        try:
            event = parse_event(d.body)
        except EventRejected:
            return None  # the topic's owner dead-letters it; audited from the DLQ
        data = event.data
        refs = [await self.subject_ref(i) for i in domain.identifiers_in(data)]
        return {
            "_id": f"{d.topic}|{event.id}",
            "kind": "event",
            "topic": d.topic,
            "partition": d.partition,
            "offset": d.offset,
            "recorded_at": now,
            "event_id": event.id,
            "type": event.type,
            "source": event.source,
            "event_time": event.time.astimezone(UTC).isoformat(),
            "refs": domain.references(data),
            "subject_refs": sorted(set(refs)),
            "data": domain.without_identifiers(data),
        }

    @staticmethod
    def _rejection(d: Delivery, now: datetime) -> dict[str, Any]:
        # The rejected body may hold personal data and cannot be trusted: keep its digest.
        return {
            "_id": f"{d.topic}|{d.partition}@{d.offset}",
            "kind": "rejection",
            "topic": d.topic,
            "partition": d.partition,
            "offset": d.offset,
            "recorded_at": now,
            "type": "gardien.event.rejected",
            "refs": {},
            "subject_refs": [],
            "data": {
                "reason": d.headers.get(DLQ_REASON, "unknown"),
                "source_topic": d.headers.get(DLQ_TOPIC, d.topic.removesuffix(topics.DLQ_SUFFIX)),
                "rejected_by": d.headers.get(DLQ_SERVICE, "unknown"),
                "body_sha256": hashlib.sha256(d.body).hexdigest(),
                "body_bytes": len(d.body),
            },
        }

    async def _append(self, chain: str, entry: dict[str, Any]) -> None:
        async with self._locks[chain]:
            store = self.store
            if await store.exists(entry["_id"]):
                return
            if chain not in self._heads:
                self._heads[chain] = await store.head(chain) or (0, chains.GENESIS)
            seq, prev = self._heads[chain]
            record = {
                **entry,
                "chain": chain,
                "seq": seq + 1,
                "prev_hash": prev,
                "chain_seq": chain_seq(chain, seq + 1),
            }
            record["hash"] = chains.record_hash(record)
            try:
                await store.insert(record)
            except DuplicateKeyError:
                self._heads.pop(chain, None)
                if await store.exists(entry["_id"]):
                    return
                raise TransientError(f"chain {chain} moved under another writer") from None
            self._heads[chain] = (seq + 1, record["hash"])
            await store.advance(chain, seq + 1, record["hash"])
