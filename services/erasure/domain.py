"""Pure rules of an erasure case: per-system progress, retries, escalation, closing.

No I/O and no clock reads: every function takes ``now``. Functions mutate the case they
are given and return what happened (``Effect``), which the use cases turn into events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from services.erasure.exports import Collection
from services.erasure.processors import OVERDUE, ProcessorTerms, flag_overdue, record_certificate
from shared.errors import TransitionRefused
from shared.events.internal import CommandLine

FINAL = frozenset({"erased", "anonymised", "retained", "not_found", "exported"})
OPEN_STATES = ("open", "escalated")
NO_SYSTEM = "no connected system could be addressed"


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=False)


Line = CommandLine  # one category of a command, as commands carry it


class Step(Model):
    """One entry of a system's history: what was sent or heard, and when."""

    at: datetime
    kind: Literal["sent", "acknowledged", "delivery_failed", "escalated"]
    attempt: int
    outcome: str | None = None
    detail: str | None = None


class Progress(Model):
    """Where one connected system stands on its command."""

    system: str
    command_id: str
    transport: Literal["kafka", "http"]
    url: str | None = None
    action: str
    lines: list[Line]
    identifiers: dict[str, Any]  # plain, or sealed as stored until a command needs them
    state: Literal["pending", "sent", "acknowledged", "held"] = "pending"
    outcome: str | None = None
    detail: str | None = None
    retained_until: str | None = None
    attempts: int = 0
    first_sent_at: datetime | None = None
    last_sent_at: datetime | None = None
    acknowledged_at: datetime | None = None
    next_attempt_at: datetime | None = None
    escalated_at: datetime | None = None
    timeout_seconds: float
    retry_initial: float
    retry_max: float
    retry_multiplier: float
    steps: list[Step] = []
    held_by: list[dict[str, str]] = []  # {hold_id, matter} of the legal holds keeping it back

    @property
    def final(self) -> bool:
        """Whether the system gave an outcome that ends its part (failed is not final)."""
        return self.outcome in FINAL

    def deadline(self) -> datetime | None:
        """When silence or failure turns into an escalation."""
        if self.first_sent_at is None:
            return None
        return self.first_sent_at + timedelta(seconds=self.timeout_seconds)


class Case(Model):
    """An erasure case: one command per affected system, closed only on proof."""

    case_id: str
    origin: str
    request_id: str | None = None
    subject_kind: str | None = None
    due_by: str | None = None
    state: Literal["open", "escalated", "closed"] = "open"
    opened_at: datetime
    closed_at: datetime | None = None
    systems: dict[str, Progress] = {}
    skipped: list[dict[str, str]] = []
    art19: dict[str, Any] | None = None
    processor: ProcessorTerms | None = None
    next_due_at: datetime | None = None
    subject_refs: list[str] = []  # keyed pseudonyms of the subject (legal-hold scope)
    holds_pending: list[str] = []  # ids of the legal holds keeping a part back (holds.py)
    collection: Collection | None = None  # access/portability: closes on its package
    version: int = 0  # the stored document's version (optimistic lock)
    revision: int = 0  # changes told so far: numbers the case's event ids

    @field_validator("opened_at", "closed_at", "next_due_at", mode="after")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # Instants set with $set come back naive from nx-27017 (docs/devstack.md): UTC.
        return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value

    @model_validator(mode="after")
    def _numbered_past_version(self) -> Case:
        # Cases stored before revisions numbered their events by version: never reuse one.
        self.revision = max(self.revision, self.version)
        return self


Art19 = Callable[[Case], dict[str, Any]]  # the Art 19 record of a case about to close


EffectKind = Literal["opened", "issue", "escalate", "progress", "held", "released", "close"]


@dataclass(frozen=True)
class Effect:
    """Something that happened to a case and must be told (``messages.events``)."""

    kind: EffectKind
    system: str | None = None
    attempt: int = 0
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # fields the case event adds


def backoff(attempt: int, initial: float, multiplier: float, maximum: float) -> timedelta:
    """Wait after attempt ``attempt`` (1-based) before the next: exponential, capped."""
    return timedelta(seconds=min(initial * multiplier ** max(attempt - 1, 0), maximum))


def _retry_at(progress: Progress, now: datetime) -> datetime | None:
    if progress.escalated_at is not None:
        return None
    wait = backoff(
        progress.attempts, progress.retry_initial, progress.retry_multiplier, progress.retry_max
    )
    deadline = progress.deadline()
    at = now + wait
    return min(at, deadline) if deadline is not None else at


def advance(case: Case, now: datetime) -> list[Effect]:
    """Send due commands, escalate systems past their timeout, flag overdue certificates."""
    effects: list[Effect] = []
    if case.state == "closed":
        return effects
    for key, progress in case.systems.items():
        due = progress.next_attempt_at
        if progress.final or progress.escalated_at is not None or due is None or due > now:
            continue
        deadline = progress.deadline()
        if deadline is not None and now >= deadline:
            progress.escalated_at, progress.next_attempt_at = now, None
            reason = f"no final outcome after {progress.attempts} attempt(s)"
            progress.steps.append(
                Step(at=now, kind="escalated", attempt=progress.attempts, detail=reason)
            )
            effects.append(Effect("escalate", key, progress.attempts, reason))
            continue
        progress.attempts += 1
        progress.state = "sent"
        progress.first_sent_at = progress.first_sent_at or now
        progress.last_sent_at = now
        progress.next_attempt_at = _retry_at(progress, now)
        progress.steps.append(Step(at=now, kind="sent", attempt=progress.attempts))
        effects.append(Effect("issue", key, progress.attempts))
    effects += _check_certificate(case, now)
    if any(e.kind == "escalate" for e in effects):
        case.state = "escalated"
    case.next_due_at = next_due(case)
    return effects


def _check_certificate(case: Case, now: datetime) -> list[Effect]:
    terms = case.processor
    if terms is None or not flag_overdue(terms, now):
        return []
    return [Effect("escalate", terms.old, 0, OVERDUE)]


def acknowledge(
    case: Case,
    system: str,
    outcome: str,
    now: datetime,
    detail: str | None = None,
    retained_until: str | None = None,
) -> bool:
    """Record a system's answer; False when it changes nothing (duplicate or late)."""
    progress = case.systems[system]
    if progress.final or case.state == "closed":
        return False
    progress.state = "acknowledged"
    progress.outcome, progress.detail = outcome, detail
    progress.retained_until = retained_until
    progress.acknowledged_at = now
    progress.steps.append(
        Step(at=now, kind="acknowledged", attempt=progress.attempts, outcome=outcome, detail=detail)
    )
    progress.next_attempt_at = None if progress.final else _retry_at(progress, now)
    case.next_due_at = next_due(case)
    return True


def delivery_failed(case: Case, system: str, now: datetime, detail: str) -> None:
    """Note a transport failure; the scheduled retry stands."""
    progress = case.systems[system]
    progress.steps.append(
        Step(at=now, kind="delivery_failed", attempt=progress.attempts, detail=detail[:300])
    )


def certify(case: Case, on: date, reference: str | None, now: datetime) -> bool:
    """Record the processor's certificate; False if the case already had one."""
    terms = case.processor
    if terms is None or not record_certificate(terms, on, reference):
        return False
    progress = case.systems.get(terms.old)
    if progress is not None and not progress.final:
        done = "returned and deleted" if terms.controller_choice == "return" else "deleted"
        acknowledge(case, terms.old, "erased", now, f"certificate: data {done}")
    case.next_due_at = next_due(case)
    return True


def ready_to_close(case: Case) -> bool:
    """Every system gave a final outcome (and a replaced processor certified).

    A collection case closes on its package instead (``collection.built``).
    """
    if case.collection is not None:
        return False
    if case.state == "closed" or not all(p.final for p in case.systems.values()):
        return False
    return case.processor is None or case.processor.done()


def close(case: Case, now: datetime, art19: dict[str, Any]) -> None:
    """Close the case with its Art 19 record; identifiers are no longer needed."""
    case.state, case.closed_at, case.art19, case.next_due_at = "closed", now, art19, None
    for progress in case.systems.values():
        progress.identifiers = {}


def next_due(case: Case) -> datetime | None:
    """The next instant the sweeper must look at this case, if any."""
    times = [
        p.next_attempt_at
        for p in case.systems.values()
        if not p.final and p.escalated_at is None and p.next_attempt_at is not None
    ]
    certificate = case.processor.due_at() if case.processor is not None else None
    if certificate is not None:
        times.append(certificate)
    return min(times) if times else None


def open_new(case: Case, now: datetime, art19: Art19) -> list[Effect]:
    """A planned case opens: first commands, then escalated (nothing addressable) or closed."""
    effects = [Effect("opened"), *advance(case, now)]
    if not case.systems and case.skipped:
        # Systems hold the data but none can be addressed: visible, never closed.
        case.state = "escalated"
        return [*effects, Effect("escalate", reason=NO_SYSTEM)]
    return effects + settle(case, now, art19)


def answer(
    case: Case,
    key: str,
    outcome: str,
    now: datetime,
    art19: Art19,
    detail: str | None = None,
    retained_until: str | None = None,
) -> list[Effect] | None:
    """A system's answer to the command stored under ``key``; None when it changes nothing."""
    if case.collection is not None:
        raise TransitionRefused(f"case {case.case_id} collects data: it takes gdpr.export.result")
    if key not in case.systems:
        raise TransitionRefused(f"case {case.case_id} sent no command to {key}")
    if not acknowledge(case, key, outcome, now, detail, retained_until):
        return None  # a duplicate or late answer
    return [
        Effect("progress", extra={"system": key, "outcome": outcome}),
        *settle(case, now, art19),
    ]


def certified(
    case: Case, on: date, reference: str | None, now: datetime, art19: Art19
) -> list[Effect] | None:
    """A processor's deletion certificate; None when the case already had one."""
    if not certify(case, on, reference, now):
        return None
    return [Effect("progress", extra={"certificate": reference}), *settle(case, now, art19)]


def due_work(case: Case, now: datetime) -> list[Effect] | None:
    """What the sweeper does now: retries, escalations; None when nothing was due."""
    before = case.next_due_at
    effects = advance(case, now)
    if not effects and case.next_due_at == before:
        return None
    return effects


def settle(case: Case, now: datetime, art19: Art19) -> list[Effect]:
    """Close the case once every part has a final outcome (and a processor certified)."""
    if not ready_to_close(case):
        return []
    close(case, now, art19(case))
    return [Effect("close")]
