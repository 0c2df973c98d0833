"""Audit use cases: append every delivered record to its partition's hash chain.

A batch (the records of one partition, in offset order) costs a handful of writes: its new
subject keys and links, one ``insert_many`` of records chained in memory from the cached
head, one of subject-index entries (one per subject and aggregate, none for an entry this
process already wrote), one head update. It is cut after each erasure case's
closure, so that no record after it is sealed under a key the closure destroys.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from services.audit import chain as chains
from services.audit import domain
from services.audit.cache import Seen
from services.audit.coalesce import Coalescer
from services.audit.repository import PositionTaken, Repositories, chain_seq, index_entries
from services.audit.sealing import Keyring, Sealer
from services.audit.settings import AuditSettings
from shared import topics
from shared.clock import Clock, SystemClock
from shared.errors import EventRejected, TransientError
from shared.events import CloudEvent, parse_event
from shared.messaging import DLQ_REASON, DLQ_SERVICE, DLQ_TOPIC, Delivery
from shared.pseudonyms import Pseudonymiser

CASE_CLOSED = "gardien.erasure.case.closed"
LOCAL_CHAIN = "gardien.audit.local/0"  # records the audit service itself originates
INDEXED_ENTRIES = 50_000  # subject-index entry ids this process remembers having written
Tracer = Callable[[str], AbstractContextManager[Any]]


class Auditor:
    """Appends audit records; one writer per chain inside this process."""

    def __init__(
        self,
        repos: Repositories,
        pseudonyms: Pseudonymiser,
        span: Tracer,
        clock: Clock | None = None,
        settings: AuditSettings | None = None,
    ) -> None:
        self.repos, self.pseudonyms, self.span = repos, pseudonyms, span
        self.clock: Clock = clock or SystemClock()
        settings = settings or AuditSettings()
        self.keyring = Keyring(repos.keys, settings.cache_seconds, settings.cache_entries)
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._heads: dict[str, tuple[int, str]] = {}
        # The partitions of a poll are audited at once: their writes leave together.
        self._records = Coalescer(repos.records.insert_records)
        self._index = Coalescer(repos.records.insert_index)
        self._indexed = Seen(INDEXED_ENTRIES)
        self._advance = Coalescer(repos.records.advance_many)
        # Called with the records each append stored, in order (webhook queue, checkpoints).
        self.after_append: list[Callable[[list[dict[str, Any]]], Any]] = []

    def subject_ref(self, identifier: str) -> str:
        """The keyed hash a DPO's identifier is looked up by (``shared.pseudonyms``)."""
        return self.pseudonyms.ref(identifier)

    async def record(self, delivery: Delivery) -> None:
        """Audit one delivered record exactly once (re-deliveries are recognised)."""
        await self.record_batch([delivery])

    async def record_batch(self, deliveries: Sequence[Delivery]) -> None:
        """Audit the records of one partition, in order, exactly once each."""
        segment: list[tuple[Delivery, CloudEvent | None]] = []
        for d in deliveries:
            event = self._event(d)
            segment.append((d, event))
            if event is not None and event.type == CASE_CLOSED:
                await self._record_segment(segment)  # the closure shreds before what follows
                segment = []
        if segment:
            await self._record_segment(segment)

    async def _record_segment(self, parsed: list[tuple[Delivery, CloudEvent | None]]) -> None:
        chain = f"{parsed[0][0].topic}/{parsed[0][0].partition}"
        with self.span("audit.append") as span:
            span.set_attribute("gardien.audit.chain", chain)
            span.set_attribute("gardien.audit.records", len(parsed))
            key, now = self.pseudonyms, self.clock.now()
            items = [(e.data, domain.references(e.data)) for _, e in parsed if e is not None]
            sealer = self.keyring.batch()
            await sealer.begin(items, key)
            entries = [await self._entry(sealer, d, e, key, now) for d, e in parsed]
            await sealer.flush()  # keys and links first: the records are sealed under them
            records = await self._append(chain, [e for e in entries if e is not None])
            # Also on a re-delivery: a crash may have come between the append and these.
            await self._write_index(records)
            closures = [r for r in records if r["type"] == CASE_CLOSED]
            for record in closures:
                await self.shred(record["refs"])
            if closures:
                self.keyring.forget()
            if records:
                for hook in self.after_append:
                    await hook(records)

    async def _write_index(self, records: list[dict[str, Any]]) -> None:
        """Store the subject-index entries of ``records`` this process has not written yet."""
        entries = {e["_id"]: e for e in index_entries(records)}
        fresh = self._indexed.unseen(entries)
        await self._index.submit([entries[i] for i in fresh])
        self._indexed.mark(fresh)  # only once written: a failed write is tried again

    async def shred(self, refs: dict[str, str]) -> int:
        """Destroy the keys of the subjects of a closed erasure case (crypto-shredding)."""
        names = [f"request:{refs['request_id']}"] if "request_id" in refs else []
        names += [f"case:{refs['case_id']}"] if "case_id" in refs else []
        ids = set(names)
        links = await self.repos.keys.linked(names)
        for link in links:
            ids.update(str(r) for r in link.get("refs", []))
        # The generations this case belongs to, never a later relationship's (re-deliveries).
        upto = max((int(link.get("gen", 1)) for link in links), default=1)
        with self.span("audit.shred") as span:
            destroyed = await self.repos.keys.destroy_keys(sorted(ids), self.clock.now(), upto)
            span.set_attribute("gardien.audit.keys_destroyed", destroyed)
        return destroyed

    @staticmethod
    def _event(d: Delivery) -> CloudEvent | None:
        """The record's event; None for a dead-letter copy or an invalid record."""
        if d.topic.endswith(topics.DLQ_SUFFIX):
            return None
        try:
            # Gardien's own topics have no owner to dead-letter an off-contract event: kept as is.
            own = d.topic.startswith("gardien.")
            return parse_event(d.body, d.raw_headers, d.timestamp_ms, check_data=not own)
        except EventRejected:
            return None  # the topic's owner dead-letters it; audited from the DLQ

    async def _entry(
        self,
        sealer: Sealer,
        d: Delivery,
        event: CloudEvent | None,
        key: Pseudonymiser,
        now: datetime,
    ) -> dict[str, Any] | None:
        """The record body (before chaining), or None for an invalid non-DLQ record."""
        if d.topic.endswith(topics.DLQ_SUFFIX):
            return self._rejection(d, now)
        if event is None:
            return None
        record_id = f"{d.topic}|{event.id}"
        refs = domain.references(event.data)
        subject_refs, sealed = await sealer.seal(key, record_id, event.data, refs, now)
        where = {"topic": d.topic, "partition": d.partition, "offset": d.offset}
        return {
            "_id": record_id, "kind": "event", **where, "recorded_at": now, "event_id": event.id,
            "type": event.type,
            "source": event.source,
            "event_time": event.time.astimezone(UTC).isoformat(),
            **_actor(event),
            "refs": refs,
            "subject_refs": subject_refs,
            "data": domain.without_personal(event.data),
            "sealed": sealed,
        }  # fmt: skip

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
            "sealed": [],
        }

    async def record_local(self, record_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Append a record the audit service originates (e.g. a webhook was disabled)."""
        entry = {
            "_id": record_id,
            "kind": "audit",
            "recorded_at": self.clock.now(),
            "type": event_type,
            "refs": {},
            "subject_refs": [],
            "data": data,
            "sealed": [],
        }
        for attempt in range(5):  # several replicas may write this chain: retry on conflict
            try:
                (record,) = await self._append(LOCAL_CHAIN, [entry])
                break
            except TransientError:
                if attempt == 4:
                    raise
        for hook in self.after_append:
            await hook([record])

    async def _append(self, chain: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chain ``entries`` after the head and store them; the stored records, in order.

        A record already stored (a re-delivery) is recognised by its ``_id`` and kept as it
        is; a position another writer took makes the batch come again (TransientError).
        """
        done: dict[str, dict[str, Any]] = {}
        async with self._locks[chain]:
            remaining = entries
            for _ in range(3):
                if not remaining:
                    break
                remaining = await self._insert_chained(chain, remaining, done)
            if remaining:
                raise TransientError(f"chain {chain} moved under another writer")
        return [done[e["_id"]] for e in entries]

    async def _insert_chained(
        self, chain: str, entries: list[dict[str, Any]], done: dict[str, dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """One ordered insert from the head; what is left to insert after a conflict."""
        records = self.repos.records
        if chain not in self._heads:
            self._heads[chain] = await records.head(chain) or (0, chains.GENESIS)
        chained = _chained(chain, self._heads[chain], entries)
        try:
            try:
                await self._records.submit(chained)
            except PositionTaken:  # someone's record in the shared insert: ours alone
                await records.insert_records(chained)
        except PositionTaken:
            self._heads.pop(chain, None)
            # Which of ours are stored (before the conflict, or by an earlier delivery)?
            found = await records.records_by_id([e["_id"] for e in entries])
            done.update(found)
            head = await records.head(chain)  # the stored prefix, whoever wrote it
            if head is not None:
                await records.advance_many([{"_id": chain, "seq": head[0], "hash": head[1]}])
            return [e for e in entries if e["_id"] not in found]
        done.update({r["_id"]: r for r in chained})
        seq, prev = self._heads[chain] = (chained[-1]["seq"], chained[-1]["hash"])
        await self._advance.submit([{"_id": chain, "seq": seq, "hash": prev}])
        return []


def _chained(
    chain: str, head: tuple[int, str], entries: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``entries`` as records of ``chain`` after ``head``: positions and hashes in order."""
    seq, prev = head
    records = []
    for entry in entries:
        seq += 1
        record = {**entry, "chain": chain, "seq": seq, "prev_hash": prev}
        record["chain_seq"] = chain_seq(chain, seq)
        record["hash"] = prev = chains.record_hash(record)
        records.append(record)
    return records


def _actor(event: CloudEvent) -> dict[str, Any]:
    """The API key an HTTP action was taken with (name and scope, never the key)."""
    actor = getattr(event, "actor", None)
    if not actor:
        return {}
    return {"actor": {"name": str(actor), "scope": str(getattr(event, "actorscope", ""))}}
