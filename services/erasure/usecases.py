"""Erasure use cases, batch-shaped: load many -> decide (domain) -> save many -> relay once.

Every inbound event becomes an ``Item``: a step on one case. The items of a batch are
grouped per case and folded in order on one in-memory state, the cases are read in one
``get_many`` and written in one ``save_many``; cases whose race another writer won are
read and decided again alone (``retry_lost``); the events of everything saved are then
published together, the keys of the cases that closed destroyed, and HTTP systems called.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from faststream.kafka import KafkaBroker
from opentelemetry.trace import Span

from services.erasure import collection, domain, holds, messages, planning
from services.erasure.connector import Reply
from services.erasure.domain import Case, Effect
from services.erasure.exports import Counted
from services.erasure.processors import local_day
from services.erasure.registry import Registry
from services.erasure.repository import Repositories, Stored, Write
from services.erasure.settings import ErasureSettings
from services.erasure.uploads import UploadLinks
from shared.clock import Clock
from shared.errors import PermanentError, TransitionRefused
from shared.events import CloudEvent
from shared.events.inbound import ErasureOutcome, ErasureResult, ProcessorDeletionCertified
from shared.events.internal import ProcessorChange, WorkRequested
from shared.persistence import Change, Saved, retry_lost

OUTCOMES = {o.value for o in ErasureOutcome}
Step = Callable[[Case], list[Effect] | None]  # None: nothing changes; may refuse (raise)


class Answer(Protocol):
    """A connected system's answer to one command."""

    @property
    def command_id(self) -> str: ...

    @property
    def system(self) -> str: ...


A = TypeVar("A", bound=Answer)
Refusals = dict[str, PermanentError]  # by the event id (or case id) refused


class Connector(Protocol):
    async def deliver(self, url: str, command: CloudEvent) -> Reply: ...


@dataclass(frozen=True)
class Item:
    """One step on one case; ``new`` opens the case when it does not exist yet."""

    case_id: str
    applied: str | None  # the event id recorded in the case (None: not an event)
    step: Step
    new: Case | None = None
    missing: str = ""


@dataclass
class Done:
    """What a batch stored, across its rounds of lost races."""

    saved: list[Change] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    left: set[str] = field(default_factory=set)  # duplicates with events a crash left


@dataclass
class Fold:
    """One case's items applied in order to one in-memory state."""

    stored: Stored | None
    case: Case | None = None
    applied: list[str] = field(default_factory=list)
    events: messages.Events = field(default_factory=list)
    changed: bool = False
    redelivered: bool = False

    def __post_init__(self) -> None:
        self.case = self.stored.case if self.stored else None
        self.seen = set(self.stored.applied if self.stored else [])

    def take(self, item: Item) -> list[Effect] | None:
        """Apply one item (None: nothing changes); raises the domain's refusal."""
        if item.applied in self.seen or (self.case is not None and item.new is not None):
            self.redelivered = True  # applied already, or the case exists
            return None
        if self.case is None and item.new is None:
            raise TransitionRefused(item.missing)
        current = self.case or (item.new.model_copy(deep=True) if item.new else None)
        assert current is not None
        effects = item.step(current)
        if effects is None:
            return None
        self.case, self.changed = current, True
        if item.applied:
            self.applied.append(item.applied)
            self.seen.add(item.applied)
        return effects

    def write(self) -> Write | None:
        """What to store, if anything changed."""
        if not self.changed or self.case is None:
            return None
        return Write(self.case, self.stored, self.applied, self.events)


@dataclass
class Erasure:
    """The erasure use cases, given their repositories and ports (``app.bootstrap``)."""

    repos: Repositories
    broker: KafkaBroker
    registry: Registry
    settings: ErasureSettings
    clock: Clock
    connector: Connector
    refs: Callable[[dict[str, str]], list[str]]  # the subject's keyed pseudonyms
    span: Callable[[str], AbstractContextManager[Span]]
    links: UploadLinks | None = None  # export commands' upload URLs (collection cases)
    # Called with the collection cases a batch left ready for their package (``collect``).
    on_ready: Callable[[list[Case]], Awaitable[None]] | None = None

    async def relay_pending(self) -> int:
        """Publish events a crash left in case documents."""
        return await self.repos.cases.relay_left(self.broker)

    async def open_work(self, works: Sequence[tuple[str, WorkRequested]]) -> Refusals:
        """Open the cases the work items ask for (once each, whatever the deliveries)."""
        with self.span("erasure.open_work") as span:
            span.set_attribute("gardien.batch", len(works))
            refused: Refusals = {}
            plain = [(i, w) for i, w in works if w.origin != "processor"]
            for event_id, work in works:
                if work.origin == "processor":
                    if work.processor is None:
                        refused[event_id] = TransitionRefused("a processor work item needs terms")
                    else:
                        refused |= await self.open_processor(work.case_id, work.processor)
            return refused | await self.apply_steps(await self._openings(plain))

    async def _openings(self, works: list[tuple[str, WorkRequested]]) -> list[Item]:
        if not works:
            return []
        now, registry = self.clock.now(), await self._routed()
        refs = {w.case_id: self.refs(planning.known_identifiers(w)) for _, w in works}
        active = await self.repos.holds.active_for(sorted({r for rs in refs.values() for r in rs}))
        items = []
        for event_id, work in works:
            case = planning.plan_case(work, registry, self.settings, now)
            case.subject_refs = refs[work.case_id]
            holds.withhold(case, active, case.subject_refs, self.registry)  # R-RET-4
            items.append(Item(case.case_id, event_id, self._opening, new=case))
        return items

    def _opening(self, case: Case) -> list[Effect]:
        return domain.open_new(case, self.clock.now(), self._art19)

    async def open_processor(self, case_id: str, change: ProcessorChange) -> Refusals:
        """Order the old processor to delete or return everything; route to the new one."""
        now = self.clock.now()
        await self.repos.routes.put(change.old, change.new, change.categories, now)
        case = planning.plan_processor_case(case_id, change, self.registry, self.settings, now)
        return await self.apply_steps([Item(case_id, None, self._opening, new=case)])

    async def record_results(self, results: Sequence[tuple[str, ErasureResult]]) -> Refusals:
        """Apply systems' answers, per case in order; duplicates change nothing."""

        def step_of(key: str, data: ErasureResult) -> Step:
            until = data.retained_until.date().isoformat() if data.retained_until else None
            return self._answer(key, data.outcome.value, data.detail, until)

        return await self.apply_answers(results, step_of, "erasure.record_results")

    async def apply_answers(
        self, results: Sequence[tuple[str, A]], step_of: Callable[[str, A], Step], name: str
    ) -> Refusals:
        """Apply answers naming their command and system (erasure results, exports), per
        case in order; an answer whose command is another system's is refused alone."""
        items, refused = [], {}
        for event_id, data in results:
            if not data.command_id.endswith(f":{data.system}"):
                reason = f"command {data.command_id} is not for system {data.system}"
                refused[event_id] = TransitionRefused(reason)
                continue
            case_id, key = holds.locate(data.command_id, data.system)
            missing = f"unknown command {case_id}:{key}"
            items.append(Item(case_id, event_id, step_of(key, data), missing=missing))
        with self.span(name) as span:
            span.set_attribute("gardien.batch", len(results))
            return refused | await self.apply_steps(items)

    def _answer(self, key: str, outcome: str, detail: str | None, until: str | None) -> Step:
        def step(case: Case) -> list[Effect] | None:
            now = self.clock.now()
            return domain.answer(case, key, outcome, now, self._art19, detail, until)

        return step

    async def certify_deletion(self, event_id: str, data: ProcessorDeletionCertified) -> Refusals:
        """Close the replacement case(s) of a processor on its deletion certificate."""
        ids = await self.repos.cases.for_processor(data.processor)
        if not ids:
            return {event_id: TransitionRefused(f"no case for processor {data.processor}")}
        on = local_day(data.at)

        def step(case: Case) -> list[Effect] | None:
            now = self.clock.now()
            return domain.certified(case, on, data.certificate_ref, now, self._art19)

        return await self.apply_steps([Item(i, event_id, step) for i in ids])

    async def sweep(self) -> int:
        """Advance every case with due work, a batch at a time: retries, escalations."""
        ids = await self.repos.cases.due(self.clock.now(), self.settings.sweep_batch)
        with self.span("erasure.sweep") as span:
            span.set_attribute("gardien.batch", len(ids))
            await self.apply_steps([Item(i, None, self._due) for i in ids], reveal=True)
        return len(ids)

    def _due(self, case: Case) -> list[Effect] | None:
        return domain.due_work(case, self.clock.now())

    async def apply_steps(self, items: list[Item], *, reveal: bool = False) -> Refusals:
        """Fold ``items`` into their cases, save once, redo lost races, then finish."""
        done, refused = Done(), {}

        async def attempt(ids: list[str]) -> list[str]:
            stored = await self.repos.cases.get_many(ids, reveal=reveal)
            writes = []
            for case_id in ids:
                write, refusals = self._fold(case_id, items, stored.get(case_id), done)
                refused.update({key: exc for key, exc in refusals})
                writes += [write] if write else []
            saved = await self.repos.cases.save_many(writes)
            kept = {c.doc_id for c in saved.saved}
            done.saved += saved.saved
            done.writes += [w for w in writes if w.case.case_id in kept]
            return saved.lost

        await retry_lost({i.case_id for i in items}, attempt)
        await self._finish(done)
        return refused

    def _fold(
        self, case_id: str, items: list[Item], stored: Stored | None, done: Done
    ) -> tuple[Write | None, list[tuple[str, PermanentError]]]:
        """Apply the case's items in order to one state: the write, and what was refused."""
        fold = Fold(stored)
        refused: list[tuple[str, PermanentError]] = []
        for item in (i for i in items if i.case_id == case_id):
            try:
                effects = fold.take(item)
            except PermanentError as exc:
                refused.append((item.applied or case_id, exc))
                continue
            if effects and fold.case is not None:
                fold.case.revision += 1
                now = self.clock.now()
                fold.events += messages.events(fold.case, effects, now, self.links)
        if fold.changed and fold.case is not None:
            collection.hold_for_build(fold.case, self.clock.now())
        if fold.redelivered and stored is not None and stored.outbox:
            done.left.add(case_id)  # a crash came before the relay of the first delivery
        return fold.write(), refused

    async def _finish(self, done: Done) -> None:
        """Publish what was saved, shred the keys of closed cases, call HTTP systems."""
        await self.repos.cases.relay(self.broker, Saved(done.saved, []))
        if done.left:
            await self.repos.cases.relay_left(self.broker, sorted(done.left))
        closed = [w.case.case_id for w in done.writes if w.case.state == "closed"]
        if closed:
            await self.repos.cases.destroy_keys(closed, self.clock.now())
        calls = [
            (w.case, event)
            for w in done.writes
            for event, _ in w.events
            if event.type == messages.COMMAND_ISSUED and event.data.get("transport") == "http"
        ]
        if calls:
            await self._call_http(calls)
        now = self.clock.now()
        ready = [w.case for w in done.writes if collection.ready(w.case, now)]
        if ready and self.on_ready is not None:
            await self.on_ready(ready)

    async def _call_http(self, calls: list[tuple[Case, CloudEvent]]) -> None:
        """POST each command; turn the answers into steps on their cases (one more batch)."""
        located = [
            (c, holds.locate(e.data["command_id"], e.data["system"])[1], e) for c, e in calls
        ]
        targets = [(c, k, e) for c, k, e in located if c.systems[k].url]
        replies = await asyncio.gather(
            *(self.connector.deliver(str(c.systems[k].url), e) for c, k, e in targets)
        )
        items = [
            self._reply(c.case_id, key, event, reply)
            for (c, key, event), reply in zip(targets, replies, strict=True)
        ]
        await self.apply_steps([i for i in items if i is not None])

    def _reply(self, case_id: str, key: str, command: CloudEvent, reply: Reply) -> Item | None:
        result: dict[str, Any] = reply.result or {}
        outcome = str(result.get("outcome"))
        if reply.result is not None and command.data.get("action") == "export":
            return self._export_reply(case_id, key, command, result)
        if reply.result is not None and outcome in OUTCOMES:
            until = str(result.get("retained_until") or "")[:10] or None
            step = self._answer(key, outcome, result.get("detail"), until)
            return Item(case_id, f"{command.id}:http", step, missing=f"unknown case {case_id}")
        if reply.accepted:
            return None
        error = reply.error or "unknown outcome"

        def failed(case: Case) -> list[Effect]:
            domain.delivery_failed(case, key, self.clock.now(), error)
            return []

        return Item(case_id, None, failed, missing=f"unknown case {case_id}")

    def _export_reply(
        self, case_id: str, key: str, command: CloudEvent, result: dict[str, Any]
    ) -> Item:
        """An HTTP system's export answer in its response (as a ``gdpr.export.result``)."""
        step = self.export_step(key, *collection.replied(result))
        return Item(case_id, f"{command.id}:http", step, missing=f"unknown case {case_id}")

    def export_step(self, key: str, outcome: str, counted: Counted, detail: str | None) -> Step:
        """The step recording a system's export answer on its collection case."""

        def step(case: Case) -> list[Effect] | None:
            return collection.exported(case, key, outcome, self.clock.now(), counted, detail)

        return step

    async def _routed(self) -> Registry:
        return planning.apply_routes(self.registry, await self.repos.routes.all())

    def _art19(self, case: Case) -> dict[str, Any]:
        return planning.art19_record(case, self.registry)
