"""Pure timer rules: what a clock is, when it fires, and what state it shows.

No I/O and no clock reads: instants come in as parameters. Instants are kept as integer
milliseconds since the epoch (UTC) in storage, so comparisons never depend on how a
store round-trips datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")


class Kind(StrEnum):
    REQUEST = "request"
    BREACH_AUTHORITY = "breach_authority"
    BREACH_SUBJECTS = "breach_subjects"
    RETENTION = "retention"
    PROCESSOR_DELETION = "processor_deletion"


class Base(StrEnum):
    """What the inputs say about a clock (the shown state adds what has fired)."""

    OPEN = "open"
    PAUSED = "paused"
    BLOCKED = "blocked"
    MET = "met"
    MISSED = "missed"
    NOT_REQUIRED = "not_required"
    DONE = "done"


class State(StrEnum):
    """The state shown by the API: base state refined by the firings already emitted."""

    OPEN = "open"
    APPROACHING = "approaching"
    DUE = "due"
    MISSED = "missed"
    PAUSED = "paused"
    BLOCKED = "blocked"
    MET = "met"
    NOT_REQUIRED = "not_required"
    DONE = "done"


CLOSED = {Base.MET, Base.MISSED, Base.DONE}
# Clocks whose obligation can be missed (a retention purge is Gardien's own action).
MISSABLE = {Kind.REQUEST, Kind.BREACH_AUTHORITY, Kind.BREACH_SUBJECTS, Kind.PROCESSOR_DELETION}


@dataclass(frozen=True)
class TimerSpec:
    """A clock as its inputs define it: kind, legal basis, due instant, base state."""

    timer_id: str
    kind: Kind
    ref: dict[str, str]
    rules: tuple[str, ...]
    base: Base
    due_at: datetime | None
    due_date: date | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def basis(self) -> str:
        """The primary rule id (the first of ``rules``)."""
        return self.rules[0]


@dataclass(frozen=True)
class Firing:
    """One planned emission of a clock: approaching (with its offset), due or missed."""

    name: str
    type: str
    at_ms: int
    offset: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "at_ms": self.at_ms, "offset": self.offset}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Firing:
        return cls(doc["name"], doc["type"], int(doc["at_ms"]), doc.get("offset"))


def to_ms(instant: datetime) -> int:
    """Milliseconds since the epoch of an aware instant."""
    return int(instant.astimezone(UTC).timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    """The UTC instant of ``ms`` milliseconds since the epoch."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso_utc(instant: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS[.mmm]Z`` of an instant."""
    text = instant.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")
    return text.removesuffix(".000") + "Z"


def end_of_day(day: date) -> datetime:
    """24:00 Europe/Paris of ``day`` in UTC: when a day-based period expires (R-CAL-2)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=PARIS).astimezone(UTC)


def firing_plan(
    spec: TimerSpec, reminder_days: list[int], reminder_hours: list[int]
) -> list[Firing]:
    """Approaching warnings at the policy offsets, then due, then missed (1 ms after)."""
    if spec.base is not Base.OPEN or spec.due_at is None:
        return []
    due = spec.due_at.astimezone(UTC)
    plan: list[Firing] = []
    if spec.kind is Kind.REQUEST:
        local = due.astimezone(PARIS)
        for days in sorted(reminder_days, reverse=True):
            at = (local - timedelta(days=days)).astimezone(UTC)
            plan.append(Firing(f"approaching:P{days}D", "approaching", to_ms(at), f"P{days}D"))
    elif spec.kind in (Kind.BREACH_AUTHORITY, Kind.BREACH_SUBJECTS):
        for hours in sorted(reminder_hours, reverse=True):
            at = due - timedelta(hours=hours)
            plan.append(Firing(f"approaching:PT{hours}H", "approaching", to_ms(at), f"PT{hours}H"))
    plan.append(Firing("due", "due", to_ms(due)))
    if spec.kind in MISSABLE:
        # The period ends at the deadline; a notification at that instant is in time
        # (R-BR-3), so the obligation is missed only strictly after it.
        plan.append(Firing("missed", "missed", to_ms(due) + 1))
    return plan


def fired_key(firing: Firing, due_ms: int | None) -> str:
    """The key recording that ``firing`` was emitted for the deadline ``due_ms``."""
    return f"{firing.name}@{due_ms}"


def pending(
    plan: list[Firing], fired: set[str], due_ms: int | None, now_ms: int
) -> tuple[list[Firing], list[str]]:
    """Firings to emit at ``now_ms`` and the keys to record as fired.

    Stale warnings collapse: of several overdue ``approaching`` firings only the latest is
    emitted, and none once the deadline itself is due.
    """
    ready = [f for f in plan if f.at_ms <= now_ms and fired_key(f, due_ms) not in fired]
    warnings = [f for f in ready if f.type == "approaching"]
    others = [f for f in ready if f.type != "approaching"]
    emit = others if others else warnings[-1:]
    return emit, [fired_key(f, due_ms) for f in ready]


def next_fire_ms(plan: list[Firing], fired: set[str], due_ms: int | None) -> int | None:
    """When the clock fires next, or None when nothing is left to fire."""
    left = [f.at_ms for f in plan if fired_key(f, due_ms) not in fired]
    return min(left) if left else None


def shown_state(base: Base, plan: list[Firing], fired: set[str], due_ms: int | None) -> State:
    """The state the API shows: open clocks advance through approaching, due, missed."""
    if base is not Base.OPEN:
        return State(base.value)
    done = {f.type for f in plan if fired_key(f, due_ms) in fired}
    for stage in ("missed", "due", "approaching"):
        if stage in done:
            return State(stage)
    return State.OPEN


def after_firing(kind: Kind, base: Base, emitted: list[Firing]) -> Base:
    """A retention clock is done once its purge is due; other clocks stay open until met."""
    if kind is Kind.RETENTION and any(f.type == "due" for f in emitted):
        return Base.DONE
    return base


def sort_key(due_ms: int | None, timer_id: str) -> str:
    """Listing order: by deadline, then id; clocks without a deadline last."""
    return f"{due_ms:015d}|{timer_id}" if due_ms is not None else f"~|{timer_id}"


def event_data(
    spec_doc: dict[str, Any], firing: Firing | None = None, **extra: Any
) -> dict[str, Any]:
    """Data of a ``gardien.deadline.*`` event (docs/events.md) from a timer document."""
    data: dict[str, Any] = {
        "timer_id": spec_doc["_id"],
        "kind": spec_doc["kind"],
        "ref": spec_doc["ref"],
        "due_at": spec_doc.get("due_at"),
        "basis": spec_doc["basis"],
        "rules": spec_doc["rules"],
    }
    if spec_doc.get("due_date"):
        data["due_date"] = spec_doc["due_date"]
    if firing is not None and firing.offset:
        data["offset"] = firing.offset
    data.update(extra)
    return data


def gauge_status(kind: str, state: str, due_ms: int, now_ms: int) -> str:
    """Where an open clock stands for the timers gauge (docs/operations.md).

    ``overdue``: an obligation's deadline has passed unmet; ``due``: the deadline is now, or
    a retention purge is waiting; ``approaching``: a reminder went out; else ``pending``.
    """
    if due_ms < now_ms:
        return "overdue" if kind in MISSABLE else "due"
    if due_ms == now_ms:
        return "due"
    return "approaching" if state == State.APPROACHING else "pending"
