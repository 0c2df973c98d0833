"""Erasure's repositories in memory: the fakes the use-case tests run on (same contract).

They keep what the MongoDB ones keep, copied on the way in and out so a caller's object
is never the stored one, and they lose races the same way (version checks, write tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from faststream.kafka import KafkaBroker

from services.erasure.domain import OPEN_STATES, Case
from services.erasure.holds import Hold
from services.erasure.messages import Events
from services.erasure.repository import OpenCase, Repositories, Stored, Write, applied_after
from shared.outbox import outbox_entry
from shared.persistence import Change, Saved, publish_all


@dataclass
class _Row:
    case: Case
    applied: list[str]
    outbox: Events
    token: str


@dataclass
class MemoryCases:
    """Cases in a dict; ``destroyed`` lists the case keys shredded."""

    rows: dict[str, _Row] = field(default_factory=dict)
    destroyed: set[str] = field(default_factory=set)

    async def get_many(self, ids: Iterable[str], *, reveal: bool = False) -> dict[str, Stored]:
        found = {i: self.rows[i] for i in sorted(set(ids)) if i in self.rows}
        return {
            i: Stored(
                _copy(row.case), list(row.applied), [outbox_entry(e, k) for e, k in row.outbox]
            )
            for i, row in found.items()
        }

    async def save_many(self, writes: Sequence[Write]) -> Saved:
        saved, lost = [], []
        for write in writes:
            case_id, row = write.case.case_id, self.rows.get(write.case.case_id)
            version = write.loaded.case.version if write.loaded else None
            if (row is None) != (version is None) or (row and row.case.version != version):
                lost.append(case_id)
                continue
            if case_id in self.destroyed:
                continue  # the key is gone: nothing may be stored again
            earlier = row.outbox if row else []
            sent = [*earlier, *write.events]
            change = Change(case_id, version, {}, [outbox_entry(e, k) for e, k in sent], sent)
            stored = _copy(write.case)
            stored.version = (version or 0) + 1
            applied = applied_after(write.loaded, write.applied)
            self.rows[case_id] = _Row(stored, applied, list(change.events), change.token)
            write.case.version = stored.version
            saved.append(change)
        return Saved(saved, lost)

    async def relay(self, broker: KafkaBroker, saved: Saved) -> int:
        changes = [c for c in saved.saved if c.events]
        await publish_all(broker, [pair for c in changes for pair in c.events])
        for change in changes:
            row = self.rows.get(change.doc_id)
            if row is not None and row.token == change.token:
                row.outbox = []
        return sum(len(c.events) for c in changes)

    async def relay_left(self, broker: KafkaBroker, ids: Iterable[str] | None = None) -> int:
        chosen = self.rows if ids is None else {i: self.rows[i] for i in ids if i in self.rows}
        events = [pair for row in chosen.values() for pair in row.outbox]
        await publish_all(broker, events)
        for row in chosen.values():
            row.outbox = []
        return len(events)

    async def destroy_keys(self, ids: Iterable[str], now: datetime) -> None:
        for case_id in ids:
            self.destroyed.add(case_id)
            row = self.rows.get(case_id)
            for progress in row.case.systems.values() if row else ():
                progress.identifiers = {}

    async def due(self, now: datetime, limit: int) -> list[str]:
        return self._ids(lambda c: c.next_due_at is not None and c.next_due_at <= now)[:limit]

    async def for_processor(self, old: str) -> list[str]:
        return self._ids(lambda c: c.processor is not None and c.processor.old == old)

    async def open_for_subjects(self, refs: list[str]) -> list[str]:
        named = set(refs)
        return self._ids(
            lambda c: c.state in OPEN_STATES and (not named or named & set(c.subject_refs) != set())
        )

    async def open_held_by(self, hold_id: str) -> list[str]:
        return self._ids(lambda c: c.state in OPEN_STATES and hold_id in c.holds_pending)

    async def open_cases(self, cap: int) -> list[OpenCase]:
        cases = [r.case for _, r in sorted(self.rows.items()) if r.case.state in OPEN_STATES]
        return [
            OpenCase(c.state, {p.system: p.state for p in c.systems.values()}) for c in cases[:cap]
        ]

    async def outbox_backlog(self, cap: int) -> int:
        return sum(len(r.outbox) for r in [r for r in self.rows.values() if r.outbox][:cap])

    def _ids(self, keep: Callable[[Case], bool]) -> list[str]:
        return [i for i, row in sorted(self.rows.items()) if keep(row.case)]

    async def page(self, state: str | None, cursor: str | None, limit: int) -> list[Case]:
        rows = [r for i, r in sorted(self.rows.items()) if (not cursor or i > cursor)]
        cases = [_copy(r.case) for r in rows if not state or r.case.state == state][:limit]
        for case in cases:
            for progress in case.systems.values():
                progress.identifiers = {}
        return cases


@dataclass
class MemoryHolds:
    """Holds by id, with whether each is still active."""

    holds: dict[str, tuple[Hold, bool]] = field(default_factory=dict)

    async def add(self, hold: Hold, placed_at: datetime) -> Hold:
        if hold.hold_id in self.holds:
            return self.holds[hold.hold_id][0]
        self.holds[hold.hold_id] = (hold, True)
        return hold

    async def release(self, hold_id: str, at: datetime) -> bool:
        if hold_id not in self.holds:
            return False
        self.holds[hold_id] = (self.holds[hold_id][0], False)
        return True

    async def active_for(self, refs: list[str]) -> list[Hold]:
        return [
            h
            for h, active in self.holds.values()
            if active and (not h.subject_refs or h.subject_refs & set(refs))
        ]


@dataclass
class MemoryRoutes:
    """Processor routes by old processor id."""

    routes: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def put(self, old: str, new: str, categories: list[str], since: datetime) -> None:
        self.routes[old] = {"new": new, "categories": list(categories)}

    async def all(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.routes.items()}


def memory_repositories() -> Repositories:
    """A fresh set of in-memory repositories."""
    return Repositories(MemoryCases(), MemoryHolds(), MemoryRoutes())


def _copy(case: Case) -> Case:
    return case.model_copy(deep=True)
