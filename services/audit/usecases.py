"""Audit use cases: append every delivered record to its partition's hash chain."""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.audit import chain as chains
from services.audit import crypto, domain
from services.audit.repository import AuditStore, chain_seq
from shared import topics
from shared.clock import Clock, SystemClock
from shared.errors import EventRejected, TransientError
from shared.events import parse_event
from shared.messaging import DLQ_REASON, DLQ_SERVICE, DLQ_TOPIC, Delivery
from shared.service import Runtime

CASE_CLOSED = "gardien.erasure.case.closed"
LOCAL_CHAIN = "gardien.audit.local/0"  # records the audit service itself originates


class Auditor:
    """Appends audit records; one writer per chain inside this process."""

    def __init__(self, runtime: Runtime, clock: Clock | None = None) -> None:
        self.runtime = runtime
        self.clock: Clock = clock or SystemClock()
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._heads: dict[str, tuple[int, str]] = {}
        # Called after each stored record (webhook queue, checkpoint trigger).
        self.after_append: list[Callable[[dict[str, Any]], Any]] = []

    @property
    def store(self) -> AuditStore:
        return AuditStore(self.runtime.db)

    def subject_ref(self, identifier: str) -> str:
        """The keyed hash a DPO's identifier is looked up by (``shared.pseudonyms``)."""
        return self.runtime.pseudonyms.ref(identifier)

    async def record(self, delivery: Delivery) -> None:
        """Audit one delivered record exactly once (re-deliveries are recognised)."""
        entry = await self._entry(delivery)
        if entry is None:
            return
        with self.runtime.span("audit.append") as span:
            span.set_attribute("gardien.audit.chain", f"{delivery.topic}/{delivery.partition}")
            if "request_id" in entry["refs"]:
                span.set_attribute("gardien.request_id", entry["refs"]["request_id"])
            record = await self._append(f"{delivery.topic}/{delivery.partition}", entry)
            # Also on a re-delivery: a crash may have come between the append and these.
            await self.store.index_subjects(record)
            if entry["type"] == CASE_CLOSED:
                await self.shred(entry["refs"])
            for hook in self.after_append:
                await hook(record)

    async def shred(self, refs: dict[str, str]) -> int:
        """Destroy the keys of the subjects of a closed erasure case (crypto-shredding)."""
        names = [f"request:{refs['request_id']}"] if "request_id" in refs else []
        names += [f"case:{refs['case_id']}"] if "case_id" in refs else []
        ids = set(names)
        links = await self.store.linked(names)
        for link in links:
            ids.update(str(r) for r in link.get("refs", []))
        # The generations this case belongs to, never a later relationship's (re-deliveries).
        upto = max((int(link.get("gen", 1)) for link in links), default=1)
        with self.runtime.span("audit.shred") as span:
            destroyed = await self.store.destroy_keys(sorted(ids), self.clock.now(), upto)
            span.set_attribute("gardien.audit.keys_destroyed", destroyed)
        return destroyed

    async def _entry(self, d: Delivery) -> dict[str, Any] | None:
        """The record body (before chaining), or None for an invalid non-DLQ record."""
        now = self.clock.now()
        if d.topic.endswith(topics.DLQ_SUFFIX):
            return self._rejection(d, now)
        try:
            event = parse_event(d.body, d.raw_headers, d.timestamp_ms)
        except EventRejected:
            return None  # the topic's owner dead-letters it; audited from the DLQ
        record_id = f"{d.topic}|{event.id}"
        refs = domain.references(event.data)
        subject_refs, sealed = await self._seal(record_id, event.data, refs)
        return {
            "_id": record_id,
            "kind": "event",
            "topic": d.topic,
            "partition": d.partition,
            "offset": d.offset,
            "recorded_at": now,
            "event_id": event.id,
            "type": event.type,
            "source": event.source,
            "event_time": event.time.astimezone(UTC).isoformat(),
            # The API key an HTTP action was taken with (name and scope, never the key).
            **(
                {"actor": {"name": str(actor), "scope": str(getattr(event, "actorscope", ""))}}
                if (actor := getattr(event, "actor", None))
                else {}
            ),
            "refs": refs,
            "subject_refs": subject_refs,
            "data": domain.without_personal(event.data),
            "sealed": sealed,
        }

    async def _seal(
        self, record_id: str, data: dict[str, Any], refs: dict[str, str]
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """(subject refs, sealed personal parts) of one event's data."""
        # One entry per subject slot of the data, so a part's ``subject`` index finds its owner;
        # a slot naming nobody (a whole-system order) stays as an empty entry.
        slots = [[self.subject_ref(i) for i in s] for s in domain.subjects_in(data)]
        subjects = [s for s in slots if s]
        names = [f"{f.removesuffix('_id')}:{refs[f]}" for f in domain.LINKABLE if f in refs]
        linked = await self.store.linked(names) if names else []
        all_refs = sorted(
            {r for s in subjects for r in s} | {str(r) for d in linked for r in d.get("refs", [])}
        )
        parts = domain.personal_parts(data)
        if not parts:  # nothing personal, hence no subject to link either
            return all_refs, []
        main, gen = await self._main_key(names, subjects, linked, refs, all_refs)
        sealed = []
        for part in parts:
            owner = slots[part.subject] if part.subject is not None else None
            kid = domain.subject_key_id(owner) if owner else main
            part_gen = gen if kid == main else await self._current_generation(kid)
            sealed.append(await self._seal_part(record_id, part, kid, part_gen))
        return all_refs, sealed

    async def _main_key(
        self,
        names: list[str],
        subjects: list[list[str]],
        linked: list[dict[str, Any]],
        refs: dict[str, str],
        all_refs: list[str],
    ) -> tuple[str, int]:
        """The key of the event's main subject and the generation the event belongs to."""
        known = {str(d["_id"]): d for d in linked if d.get("key_id")}
        if subjects:
            main = domain.subject_key_id(subjects[0])
        elif known:
            main = next(str(known[n]["key_id"]) for n in names if n in known)
        else:  # no subject: the aggregate's own key, never renewed once destroyed
            main = names[0] if names else "unlinked"
            return main, await self._current_generation(main)
        bound = [int(d.get("gen", 1)) for d in known.values() if d["key_id"] == main]
        opens = any(f in refs for f in domain.RELATIONSHIPS)
        state = await self.store.key_state(main)
        gen = domain.generation_for(state, bound, bool(known), opens)
        if subjects and names:
            await self.store.link(names, main, all_refs, gen)
        return main, gen

    async def _current_generation(self, kid: str) -> int:
        return domain.generation_for(await self.store.key_state(kid), [], False, False)

    async def _seal_part(
        self, record_id: str, part: domain.Part, kid: str, gen: int
    ) -> dict[str, Any]:
        """One personal part encrypted under generation ``gen`` of ``kid``, if it lives."""
        secret = await self.store.key_at(kid, gen, self.clock.now())
        if secret is None:  # that generation was shredded: the value is not kept at all
            return {"path": part.path, "kid": kid, "gen": gen, "shredded": True}
        aad = f"{record_id}|{part.path}|{kid}|{gen}"
        return {"path": part.path, "kid": kid, "gen": gen, **crypto.seal(secret, part.value, aad)}

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
                record = await self._append(LOCAL_CHAIN, entry)
                break
            except TransientError:
                if attempt == 4:
                    raise
        for hook in self.after_append:
            await hook(record)

    async def _append(self, chain: str, entry: dict[str, Any]) -> dict[str, Any]:
        async with self._locks[chain]:
            store = self.store
            # No read first: a re-delivered record fails the insert on its ``_id``.
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
                found = await store.records.find_one({"_id": entry["_id"]})
                if found is not None:
                    return found
                raise TransientError(f"chain {chain} moved under another writer") from None
            self._heads[chain] = (seq + 1, record["hash"])
            await store.advance(chain, seq + 1, record["hash"])
            return record
