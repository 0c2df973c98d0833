"""In-memory repositories: the same contracts as the MongoDB ones (tests/contract), for
use-case tests that run in milliseconds. Documents are copied in and out, like a store."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from services.deadlines.repository import Listing, PublishThenClear, Repositories
from shared.events import CloudEvent
from shared.memory import MemoryVersioned
from shared.persistence import TOKEN, Change, Saved
from shared.subject_vault import SEALED, KeyShredded

Doc = dict[str, Any]


class MemoryTimers(PublishThenClear, MemoryVersioned):
    """Timers in a dict; ``sent`` collects every event relayed, in order."""

    # Timers add leases to the versioned documents: a leased write keeps others out.
    async def save_many(self, changes: Sequence[Change]) -> Saved:
        return self._write(changes, None)

    async def fire_many(self, changes: Sequence[Change], now_ms: int) -> Saved:
        return self._write(changes, now_ms)

    def _write(self, changes: Sequence[Change], free_at_ms: int | None) -> Saved:
        for change in changes:
            body = {**copy.deepcopy(change.fields), TOKEN: change.token}
            body.update(outbox=copy.deepcopy(change.outbox), outbox_pending=bool(change.outbox))
            current = self.docs.get(change.doc_id)
            if change.version is None and current is None and free_at_ms is None:
                self.docs[change.doc_id] = {"_id": change.doc_id, **body, "version": 1}
            elif current is not None and _writable(current, change.version, free_at_ms):
                current.update(body, version=int(change.version or 0) + 1)
        saved = [c for c in changes if self.docs.get(c.doc_id, {}).get(TOKEN) == c.token]
        lost = [c.doc_id for c in changes if c not in saved]
        return Saved(saved, lost)

    async def publish(self, saved: Sequence[Change]) -> int:
        pairs = [pair for c in saved if c.outbox for pair in c.events]
        self.sent.extend(pairs)
        return len(pairs)

    async def clear(self, published: Sequence[Change]) -> None:
        for change in published:
            doc = self.docs.get(change.doc_id)
            if doc is not None and doc.get(TOKEN) == change.token:
                doc.update(outbox=[], outbox_pending=False, lease_until_ms=0, lease_token=None)
            elif doc is not None and change.fields.get("lease_token") == doc.get("lease_token"):
                doc.update(lease_until_ms=0, lease_token=None)  # a newer writer relays its own

    async def relay_pending(self, older_than_ms: int) -> int:
        sent = 0
        for doc in self.docs.values():
            if doc.get("outbox_pending") and int(doc.get("outbox_at_ms") or 0) <= older_than_ms:
                events = [(CloudEvent.model_validate(e["event"]), e["key"]) for e in doc["outbox"]]
                self.sent.extend(events)
                doc.update(outbox=[], outbox_pending=False, version=doc["version"] + 1)
                sent += len(events)
        return sent

    async def due(self, now_ms: int, limit: int) -> list[Doc]:
        due = sorted(
            (d for d in self.docs.values() if _due(d, now_ms)), key=lambda d: d["next_fire_ms"]
        )
        return [copy.deepcopy(d) for d in due[:limit]]

    async def next_due_ms(self, after_ms: int, before_ms: int) -> int | None:
        times = [d.get("next_fire_ms") for d in self.docs.values()]
        return min((t for t in times if t is not None and after_ms < t <= before_ms), default=None)

    async def page(self, listing: Listing) -> list[Doc]:
        found = [d for d in self.docs.values() if _listed(d, listing)]
        found.sort(key=lambda d: str(d["sort_key"]))
        return [copy.deepcopy(d) for d in found[: listing.limit]]

    async def retention_for(self, refs: list[str], categories: list[str]) -> list[str]:
        def covers(doc: Doc) -> bool:
            if refs:
                return bool(set(refs) & set(doc.get("subject_refs", [])))
            return not categories or doc.get("category") in categories

        return [i for i, d in self.docs.items() if d.get("kind") == "retention" and covers(d)]

    async def for_processor(self, processor: str) -> list[str]:
        return [i for i, d in self.docs.items() if d.get("processor") == processor]

    async def open_clocks(self, cap: int) -> list[Doc]:
        shown = [
            {k: d.get(k) for k in ("kind", "state", "due_ms")}
            for d in self.docs.values()
            if d.get("base") == "open" and d.get("due_ms") is not None
        ]
        return shown[:cap]

    async def outbox_backlog(self, cap: int) -> int:
        pending = [d for d in self.docs.values() if d.get("outbox_pending")][:cap]
        return sum(len(d.get("outbox") or []) for d in pending)


def _writable(doc: Doc, version: int | None, free_at_ms: int | None) -> bool:
    """At ``version``, and (for a leased write) with no live lease at ``free_at_ms``."""
    free = free_at_ms is None or int(doc.get("lease_until_ms") or 0) < free_at_ms
    return doc.get("version") == version and free


def _due(doc: Doc, now_ms: int) -> bool:
    nxt = doc.get("next_fire_ms")
    return nxt is not None and nxt <= now_ms and int(doc.get("lease_until_ms") or 0) < now_ms


def _listed(doc: Doc, listing: Listing) -> bool:
    due_ms = doc.get("due_ms")
    return (
        (not listing.states or doc.get("state") in listing.states)
        and (not listing.kinds or doc.get("kind") in listing.kinds)
        and (
            listing.due_before_ms is None or (due_ms is not None and due_ms < listing.due_before_ms)
        )
        and (listing.after is None or str(doc["sort_key"]) > listing.after)
    )


class MemoryHolds:
    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}

    async def get_many(self, keys: Iterable[str]) -> dict[str, Doc]:
        return {k: copy.deepcopy(self.docs[k]) for k in set(keys) if k in self.docs}

    async def save_many(self, new: Sequence[Doc], released: dict[str, str]) -> None:
        for doc in new:
            self.docs.setdefault(doc["_id"], copy.deepcopy(doc))
        for key, on in released.items():
            if key in self.docs:
                self.docs[key].update(released_on=on, active=False)

    async def listed(self, limit: int) -> list[Doc]:
        return [copy.deepcopy(self.docs[k]) for k in sorted(self.docs)][:limit]

    async def active(self, refs: list[str]) -> list[Doc]:
        found = [
            d
            for d in self.docs.values()
            if d.get("scope_all_subjects") or set(refs) & set(d.get("subject_refs", []))
        ]
        return [copy.deepcopy(d) for d in found if d.get("active")]


class MemoryVault:
    """Subject keys as live and destroyed ids; a sealed value names its copy kept here."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[str, str, Any]] = {}  # handle -> (kid, aad, value)
        self.gone: set[str] = set()
        self.prepared: list[list[str]] = []  # the kids of each read ``prepare`` makes

    def keys(self) -> MemoryVault:
        """A batch's keys: the vault itself (nothing to read ahead in memory)."""
        return self

    async def prepare(self, kids: Iterable[str], now: datetime | None, create: bool = True) -> None:
        wanted = sorted(set(kids))
        if wanted:  # as ``SubjectVault``: nothing to read, no round trip
            self.prepared.append(wanted)

    async def seal(
        self, kid: str, value: Any, aad: str, now: datetime | None = None
    ) -> dict[str, Any]:
        if kid in self.gone:
            raise KeyShredded(f"the subject key {kid} was destroyed")
        handle = uuid.uuid4().hex
        self.values[handle] = (kid, aad, copy.deepcopy(value))
        return {SEALED: 1, "kid": kid, "c": handle}

    async def open(self, sealed: dict[str, Any], aad: str) -> Any | None:
        kid, bound, value = self.values.get(sealed["c"], (sealed["kid"], aad, None))
        if kid in self.gone:
            return None
        if bound != aad or kid != sealed["kid"]:
            raise ValueError(f"sealed value under {kid} does not match its context")
        return copy.deepcopy(value)

    async def destroy(self, kid: str, now: datetime) -> bool:
        return kid in await self.destroy_many([kid], now)

    async def destroy_many(self, kids: Iterable[str], now: datetime) -> set[str]:
        wanted = set(kids)
        first = wanted - self.gone
        self.gone |= wanted
        self.values = {h: v for h, v in self.values.items() if v[0] not in self.gone}
        return first

    async def destroyed(self, kid: str) -> bool:
        return kid in self.gone


def memory_repositories() -> Repositories:
    """Fresh, empty in-memory repositories."""
    return Repositories(MemoryTimers(), MemoryHolds(), MemoryVault())
