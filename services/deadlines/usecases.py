"""Deadlines use cases, batch-shaped: one batch of inbound events -> the timers it touches,
loaded in one read -> the decisions of ``decide.py`` folded in event order in memory ->
one ``save_many`` (lost races redone alone) -> one relay of every event the batch caused.

Each event is applied to a timer once (its id is kept in the timer's ``applied_events``);
the event that created a timer, delivered again while the timer is in its first state,
publishes the timer's first events again, identically (``messages.first_events_again``);
a refused event (``PermanentError``) does not stop the others: the batch is saved, then the
first refusal is raised, so the consumer replays the batch one by one and dead-letters the
refused event alone (the others are then already applied and change nothing).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any

from opentelemetry.trace import Span

from services.deadlines import clocks, decide
from services.deadlines.domain import to_ms
from services.deadlines.messages import (
    Outgoing,
    Recompute,
    change_events,
    entries,
    first_events_again,
    new_timer,
    timer_fields,
)
from services.deadlines.repository import Repositories, SubjectKeys
from shared.clock import Clock
from shared.errors import PermanentError, TransitionRefused
from shared.events import CloudEvent
from shared.events.inbound import (
    BreachDetected,
    BreachNotified,
    ProcessorDeletionCertified,
    ProcessorReplaced,
)
from shared.events.internal import RequestAccepted, RequestStatusChanged
from shared.persistence import TOKEN, Change, retry_lost
from shared.pseudonyms import Pseudonymiser
from shared.rules import Policy, local_date
from shared.subject_vault import is_sealed

log = logging.getLogger(__name__)
Doc = dict[str, Any]
Compute = Callable[[Doc | None], Recompute | None]
Tracer = Callable[[str], AbstractContextManager[Span]]
is_closed = decide.is_closed  # imported from here by the HTTP actions
APPLIED_KEPT = 200  # event ids kept per timer to recognise a redelivery
STORED = frozenset({"_id", "version", TOKEN, "outbox", "outbox_pending"})


@dataclass(frozen=True)
class Inbound:
    """An event as the handler layer validated it: the envelope and its typed data (the
    inbound model of its type; the data as sent for Gardien's own request and case events)."""

    event: CloudEvent
    data: Any
    hold: Doc | None = None  # a legal-hold event: the hold as it stands after it
    sealed: dict[str, Doc | None] | None = None  # a clock start: timer id -> its subject


@dataclass(frozen=True)
class Step:
    """What one event does to one timer; ``required`` names what must exist already."""

    timer_id: str
    event: CloudEvent
    compute: Compute
    required: str | None = None


class Deadlines:
    """Applies batches of inbound events to timers; ``plans`` say which timers each type
    touches (``PLANS`` here, ``retention.PLANS``; ``app.bootstrap`` joins them)."""

    def __init__(
        self,
        repos: Repositories,
        policy: Policy,
        clock: Clock,
        pseudonyms: Pseudonymiser,
        span: Tracer,
        plans: dict[str, Plan],
        prepare: Prepare | None = None,
    ) -> None:
        self.repos, self.policy, self.clock = repos, policy, clock
        self.pseudonyms, self.span, self.plans = pseudonyms, span, plans
        self.prepare = prepare  # the batch's own writes before planning (legal holds)

    async def handle(self, items: Sequence[Inbound]) -> None:
        """One batch: plan each event (its own reads), apply all, raise the first refusal."""
        refused: dict[str, PermanentError] = {}
        steps: list[Step] = []
        with self.span("deadlines.handle") as span:
            span.set_attribute("gardien.batch_size", len(items))
            if self.prepare is not None:
                items = await self.prepare(self, items)
            for item in items:
                plan = self.plans.get(item.event.type)
                try:
                    steps += await plan(self, item) if plan is not None else []
                except PermanentError as exc:
                    refused[item.event.id] = exc
            await self.apply(steps, refused)
            span.set_attribute("gardien.refused", len(refused))
        first = next((refused[i.event.id] for i in items if i.event.id in refused), None)
        if first is not None:
            raise first

    async def apply(self, steps: Sequence[Step], refused: dict[str, PermanentError]) -> int:
        """Fold ``steps`` per timer in order, save once, relay once; how many timers changed."""
        by_timer: dict[str, list[Step]] = {}
        for step in steps:
            by_timer.setdefault(step.timer_id, []).append(step)
        saved: list[Change] = []

        async def attempt(ids: list[str]) -> list[str]:
            docs = await self.repos.timers.load_many(ids)
            keys = self.repos.vault.keys()  # for events a crashed writer left sealed
            left = sealed_kids(e for d in docs.values() for e in left_events(d))
            await keys.prepare(left, None, create=False)
            changes = []
            for tid in ids:
                change = await self._fold(tid, docs.get(tid), by_timer[tid], refused, keys)
                if change is not None:
                    changes.append(change)
            result = await self.repos.timers.save_many(changes)
            saved.extend(result.saved)
            return result.lost

        with self.span("deadlines.apply") as span:
            span.set_attribute("gardien.timers", len(by_timer))
            await retry_lost(by_timer, attempt)
            span.set_attribute("gardien.events_sent", await self.repos.timers.relay(saved))
        return len(saved)

    async def _fold(
        self,
        timer_id: str,
        doc: Doc | None,
        steps: list[Step],
        refused: dict[str, PermanentError],
        keys: SubjectKeys,
    ) -> Change | None:
        state, events = doc, list[Outgoing]()
        for step in steps:
            if state is not None and step.event.id in state.get("applied_events", []):
                events += redelivered(doc, state, step.event, events)
                continue
            try:
                if state is None and step.required:
                    raise TransitionRefused(f"unknown {step.required}")
                change = step.compute(state)
            except PermanentError as exc:
                refused[step.event.id] = exc
                continue
            if change is not None:
                new = self._next(state, change, step.event)
                events += change_events(state, new, step.event)
                state = new
        if state is None or (state is doc and not events):
            return None
        return await self._change(doc, state, events, keys)

    def _next(self, state: Doc | None, change: Recompute, event: CloudEvent) -> Doc:
        if state is None:
            return new_timer(change, self.policy, event.id, event.time)
        fired = set(state.get("fired", []))
        return {
            **state,
            "inputs": change.inputs,
            **timer_fields(change.spec, fired, self.policy),
            **change.fields,
            "applied_events": [*state.get("applied_events", []), event.id][-APPLIED_KEPT:],
        }

    async def _change(
        self, doc: Doc | None, state: Doc, events: list[Outgoing], keys: SubjectKeys
    ) -> Change:
        """The save of ``state``: changed fields only, events queued after any left over."""
        fields = {
            k: v
            for k, v in state.items()
            if k not in STORED and (doc is None or k not in doc or doc[k] != v)
        }
        if events:
            fields["outbox_at_ms"] = to_ms(self.clock.now())
        left, left_sent = await outgoing(doc, keys)
        version = int(doc["version"]) if doc is not None else None
        return Change(
            str(state["_id"]), version, fields, left + entries(events), left_sent + events
        )

    async def relay_stale(self, grace_ms: int = 10_000) -> int:
        """Publish events a crashed writer left queued for longer than ``grace_ms``."""
        return await self.repos.timers.relay_pending(to_ms(self.clock.now()) - grace_ms)


def redelivered(
    doc: Doc | None, state: Doc, event: CloudEvent, caused: list[Outgoing]
) -> list[Outgoing]:
    """An event applied already: the timer's first events again if it created the timer and
    the timer is still in its first state (``first_events_again``), except those still in
    the stored outbox (its writer or the sweep relays them) or ``caused`` by this batch."""
    queued = {str(e["event"]["id"]) for e in stored_outbox(doc)} | {e.id for e, _ in caused}
    return first_events_again(state, event, queued)


def stored_outbox(doc: Doc | None) -> list[Doc]:
    """The outbox entries ``doc`` still holds (a crashed writer's, not yet published)."""
    return [
        json.loads(e) if isinstance(e, str) else dict(e) for e in (doc or {}).get("outbox") or []
    ]


def left_events(doc: Doc | None) -> list[CloudEvent]:
    """The events of ``doc``'s outbox, as stored (subjects sealed)."""
    return [CloudEvent.model_validate(e["event"]) for e in stored_outbox(doc)]


def sealed_kids(events: Iterable[CloudEvent]) -> list[str]:
    """The keys the sealed subjects of ``events`` are under (what ``as_sent`` opens)."""
    sealed = (e.data.get("subject") for e in events)
    return sorted({str(s["kid"]) for s in sealed if isinstance(s, dict) and is_sealed(s)})


async def outgoing(doc: Doc | None, keys: SubjectKeys) -> tuple[list[Doc], list[Outgoing]]:
    """The outbox entries ``doc`` still holds, and the same events as they are sent."""
    stored = stored_outbox(doc)
    sent = [(await as_sent(CloudEvent.model_validate(e["event"]), keys), e["key"]) for e in stored]
    return stored, sent


async def as_sent(event: CloudEvent, keys: SubjectKeys) -> CloudEvent:
    """``event`` with its sealed subject opened (left out once the key is destroyed).

    ``keys`` should have read the key (``prepare``, ``sealed_kids``): else it is one read.
    """
    sealed = event.data.get("subject")
    if not isinstance(sealed, dict) or not is_sealed(sealed):
        return event
    data = dict(event.data)
    subject = await keys.open(sealed, "subject")
    if subject is None:  # the id names the timer, never the subject
        log.info("subject key destroyed: %s is sent without its subject", event.id)
        data.pop("subject")
    else:
        data["subject"] = subject
    return event.model_copy(update={"data": data})


# ---- which timers each inbound event touches (reads of holds and keys happen here) -------


Plan = Callable[[Deadlines, Inbound], Awaitable[list[Step]]]
Prepare = Callable[[Deadlines, Sequence[Inbound]], Awaitable[Sequence[Inbound]]]


async def request_event(uses: Deadlines, item: Inbound) -> list[Step]:
    """Request clocks from intake's accepted and status_changed events."""
    typed: RequestAccepted | RequestStatusChanged = item.data
    event, calendar = item.event, uses.policy.holiday_calendar
    # The clock arithmetic reads the wire form (ISO dates), as intake sent it.
    data = typed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return [
        Step(
            f"request:{typed.request_id}",
            event,
            lambda d: decide.request_change(d, event.type, data, calendar),
        )
    ]


async def breach_detected(uses: Deadlines, item: Inbound) -> list[Step]:
    """The 72 h authority clock and, for a high risk, the data-subject clock (R-BR-1..4)."""
    data: BreachDetected = item.data
    raw = data.model_dump(mode="json")
    inputs = {k: raw.get(k) for k in ("aware_at", "reported_by", "processor_aware_at", "risk")}
    return [
        Step(spec.timer_id, item.event, partial(decide.opened, spec=spec, inputs=inputs))
        for spec in clocks.breach_clocks(raw, uses.policy)
    ]


async def breach_notified(uses: Deadlines, item: Inbound) -> list[Step]:
    """Authority or subjects notified: met, or late with reasons required (R-BR-3)."""
    data: BreachNotified = item.data
    which = "authority" if item.event.type.endswith("authority_notified") else "subjects"
    compute: Compute = lambda d: decide.notified_change(d, data)  # noqa: E731
    return [
        Step(f"breach:{data.breach_id}:{which}", item.event, compute, f"breach {data.breach_id}")
    ]


async def processor_replaced(uses: Deadlines, item: Inbound) -> list[Step]:
    """The old processor must delete or return the data by end + contractual days."""
    data: ProcessorReplaced = item.data
    contractual = uses.policy.contractual
    days = data.contractual_days
    choice = data.controller_choice.value if data.controller_choice else None
    inputs = {
        "old_processor": data.old_processor, "new_processor": data.new_processor,
        "effective_on": local_date(data.effective_at).isoformat(),
        "contractual_days": days if days is not None else contractual.processor_deletion_days,
        "controller_choice": choice or contractual.processor_end_choice,
    }  # fmt: skip
    spec = clocks.processor_clock(inputs)
    fields = {"processor": data.old_processor}
    return [Step(spec.timer_id, item.event, lambda d: decide.opened(d, spec, inputs, fields))]


async def deletion_certified(uses: Deadlines, item: Inbound) -> list[Step]:
    """A certificate closes the processor's clocks: closed, or closed late (R-PROC-1)."""
    data: ProcessorDeletionCertified = item.data
    on = local_date(data.at)
    found = await uses.repos.timers.for_processor(data.processor)
    return [Step(tid, item.event, lambda d: decide.certified_change(d, on)) for tid in found]


PLANS: dict[str, Plan] = {
    "gardien.request.accepted": request_event,
    "gardien.request.status_changed": request_event,
    "gdpr.breach.detected": breach_detected,
    "gdpr.breach.authority_notified": breach_notified,
    "gdpr.breach.subjects_notified": breach_notified,
    "gdpr.processor.replaced": processor_replaced,
    "gdpr.processor.deletion_certified": deletion_certified,
}
