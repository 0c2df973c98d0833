"""Erasure's storage behind a door: the Protocols the use cases see, and what they exchange.

Two implementations pass the same contract suite (``tests/contract/test_erasure_*.py``):
MongoDB (``mongo.py``) and in memory (``memory.py``). Cases are batch-shaped: read many in
one go, decide in memory, save many in one write, relay their events from memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from faststream.kafka import KafkaBroker

from services.erasure.domain import Case
from services.erasure.holds import Hold
from services.erasure.messages import Events
from shared.persistence import Saved

APPLIED_KEPT = 500  # ids of the last events applied to a case (redelivery guard)


@dataclass
class Stored:
    """A case as read: its state and the ids of the events already applied to it.

    ``outbox`` and ``stored_parts`` are opaque to the use cases: the stored events a crash
    left unsent, which the next save of the case carries on (and its relay sends), and the
    parts as stored, so that a save writes only the parts that changed.
    """

    case: Case
    applied: list[str]
    outbox: list[dict[str, Any]] = field(default_factory=list)
    stored_parts: dict[str, Any] = field(default_factory=dict)  # as stored: writes diff it


@dataclass(frozen=True)
class OpenCase:
    """An open case as the gauges see it: its state and where each system's part stands."""

    state: str
    parts: dict[str, str]  # system id -> part state (pending, sent, acknowledged, held)


@dataclass
class Write:
    """A case to store with the events it causes: new when ``loaded`` is None."""

    case: Case
    loaded: Stored | None
    applied: list[str]
    events: Events


class CaseRepository(Protocol):
    """Erasure cases, one document per case."""

    async def get_many(self, ids: Iterable[str], *, reveal: bool = False) -> dict[str, Stored]:
        """The cases of ``ids`` that exist; ``reveal`` opens identifiers (to send commands)."""
        ...

    async def save_many(self, writes: Sequence[Write]) -> Saved:
        """Insert new cases and update the others at their version, in one write."""
        ...

    async def relay(self, broker: KafkaBroker, saved: Saved) -> int:
        """Publish the events of what was saved, from memory, then clear those outboxes."""
        ...

    async def relay_left(self, broker: KafkaBroker, ids: Iterable[str] | None = None) -> int:
        """Publish events a crash left in stored cases (of ``ids``, or all of them)."""
        ...

    async def destroy_keys(self, ids: Iterable[str], now: datetime) -> None:
        """Crypto-shred the identifiers of closed cases (stored copies and outbox)."""
        ...

    async def due(self, now: datetime, limit: int) -> list[str]:
        """Ids of cases with work due at ``now`` (retries, escalations, certificates)."""
        ...

    async def for_processor(self, old: str) -> list[str]:
        """Ids of the cases opened for the replacement of processor ``old``."""
        ...

    async def open_for_subjects(self, refs: list[str]) -> list[str]:
        """Ids of open cases naming one of ``refs`` (every open case when ``refs`` is empty)."""
        ...

    async def open_held_by(self, hold_id: str) -> list[str]:
        """Ids of open cases with a part kept back by hold ``hold_id``."""
        ...

    async def page(self, state: str | None, cursor: str | None, limit: int) -> list[Case]:
        """Cases in id order after ``cursor``, optionally in one state; no identifiers."""
        ...

    async def open_cases(self, cap: int) -> list[OpenCase]:
        """Up to ``cap`` open cases, as states only (no identifiers read)."""
        ...

    async def outbox_backlog(self, cap: int) -> int:
        """Events left in the cases' outboxes (of at most ``cap`` cases)."""
        ...


class HoldRepository(Protocol):
    """The legal holds erasure knows, active or released."""

    async def add(self, hold: Hold, placed_at: datetime) -> Hold:
        """Record a hold once; a redelivery returns the hold as first stored."""
        ...

    async def release(self, hold_id: str, at: datetime) -> bool:
        """Mark a hold released; False when erasure never heard of it."""
        ...

    async def active_for(self, refs: list[str]) -> list[Hold]:
        """Active holds naming one of ``refs`` or naming no subject."""
        ...


class RouteRepository(Protocol):
    """Where replaced processors' categories go now (R-PROC-1)."""

    async def put(self, old: str, new: str, categories: list[str], since: datetime) -> None:
        """Route ``old``'s categories to ``new`` from now on (idempotent)."""
        ...

    async def all(self) -> dict[str, dict[str, Any]]:
        """Every route by old processor id: {new, categories}."""
        ...


@dataclass(frozen=True)
class Repositories:
    """Everything erasure stores, as the use cases receive it (bootstrap's door)."""

    cases: CaseRepository
    holds: HoldRepository
    routes: RouteRepository


def applied_after(stored: Stored | None, ids: list[str]) -> list[str]:
    """The applied-event ids a case keeps after ``ids`` (the latest ``APPLIED_KEPT``)."""
    return [*(stored.applied if stored else []), *ids][-APPLIED_KEPT:]
