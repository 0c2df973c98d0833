"""Erasure's subscribers, one batch subscriber per topic: validate -> call a use case.

A refused event (invalid data, a transition the domain refuses) must not sink the others of
its batch: the use cases decide per event and return the refusals, and once the others are
stored the handler raises ``RefusedEvents`` naming the refused ones; the consumer
dead-letters exactly those and commits the poll (no replay one by one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ValidationError

from services.erasure import holdcases
from services.erasure.processors import local_day
from services.erasure.usecases import Erasure, Refusals
from shared import topics
from shared.errors import EventRejected, RefusedEvents, TransitionRefused
from shared.events import CloudEvent
from shared.events.inbound import (
    ErasureResult,
    ExportResult,
    LegalHold,
    ProcessorDeletionCertified,
    ProcessorReplaced,
)
from shared.events.internal import AccessWorkRequested, ProcessorChange, WorkRequested
from shared.service import Runtime

if TYPE_CHECKING:
    from services.erasure.collect import Collector

OWNED = [topics.PROCESSORS, topics.ERASURE_RESULTS, topics.ERASURE_WORK]
WORK_REQUESTED = "gardien.erasure.work.requested"
ACCESS_WORK_REQUESTED = "gardien.access.work.requested"
EXPORT_RESULT = "gdpr.export.result"
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
OPEN_SLICE = 100  # new cases opened together (one read, one write, one publish each)


def register(
    runtime: Runtime, uses: Callable[[], Erasure], collector: Callable[[], Collector]
) -> None:
    """Subscribe erasure to its topics (it dead-letters the poison events of those it owns)."""

    async def on_work(batch: Sequence[CloudEvent]) -> None:
        known = (WORK_REQUESTED, ACCESS_WORK_REQUESTED)
        refused = {e.id: TransitionRefused(f"erasure does not handle {e.type}")
                   for e in batch if e.type not in known}  # fmt: skip
        works, invalid = typed([e for e in batch if e.type == WORK_REQUESTED], work_model())
        access = [e for e in batch if e.type == ACCESS_WORK_REQUESTED]
        collections, bad = typed(access, AccessWorkRequested)
        opened: Refusals = {}
        for part in slices(works):
            opened |= await uses().open_work(part)
        for items in slices(collections):
            opened |= await collector().open(items)
        settle(batch, refused | invalid | bad | opened)

    async def on_results(batch: Sequence[CloudEvent]) -> None:
        results, invalid = typed([e for e in batch if e.type != EXPORT_RESULT], ErasureResult)
        exports, bad = typed([e for e in batch if e.type == EXPORT_RESULT], ExportResult)
        recorded = await uses().record_results(results) if results else {}
        recorded |= await collector().results(exports) if exports else {}
        settle(batch, invalid | bad | recorded)

    async def on_processor_events(batch: Sequence[CloudEvent]) -> None:
        refused: Refusals = {}
        for event in batch:  # rare events: one at a time, in order
            refused |= await on_processor(uses(), event)
        settle(batch, refused)

    async def on_legal_holds(batch: Sequence[CloudEvent]) -> None:
        # Deadlines owns the topic and dead-letters it: erasure skips what it cannot read.
        for event_id, hold in typed(batch, LegalHold)[0]:  # rare events: one at a time
            kind = next(e.type for e in batch if e.id == event_id)
            if kind == "gdpr.legal_hold.placed":
                await holdcases.placed(uses(), event_id, hold)
            elif kind == "gdpr.legal_hold.released":
                await holdcases.released(uses(), event_id, hold)

    runtime.consumer.batches(topics.ERASURE_WORK, on_work)
    runtime.consumer.batches(topics.PROCESSORS, on_processor_events)
    runtime.consumer.batches(topics.ERASURE_RESULTS, on_results)
    runtime.consumer.batches(topics.LEGAL_HOLDS, on_legal_holds, dead_letters=False)


def slices(items: list[T], size: int = OPEN_SLICE) -> list[list[T]]:
    """``items`` in order, ``size`` at a time: a poll of new cases is opened a slice at a
    time, so the cases and events in memory at once stay bounded (a case with ten systems
    is ~9 KB and 11 events) while each slice is still one read, one write, one publish."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def work_model() -> type[WorkRequested]:
    """The model of the work erasure consumes (the registry's, shared/events/internal.py)."""
    return WorkRequested


async def on_processor(erasure: Erasure, event: CloudEvent) -> Refusals:
    """A processor replaced (order deletion, route) or its deletion certified (close)."""
    if event.type == "gdpr.processor.replaced":
        replaced, invalid = typed([event], ProcessorReplaced)
        for _, data in replaced:
            return await erasure.open_processor(processor_case_id(data), processor_change(data))
        return invalid
    certified, invalid = typed([event], ProcessorDeletionCertified)
    for event_id, proof in certified:
        return await erasure.certify_deletion(event_id, proof)
    return invalid


def processor_case_id(data: ProcessorReplaced) -> str:
    """``proc:<old>:<effective date, Paris>``."""
    return f"proc:{data.old_processor}:{local_day(data.effective_at).isoformat()}"


def processor_change(data: ProcessorReplaced) -> ProcessorChange:
    """The replacement's terms as planning takes them."""
    return ProcessorChange(
        old=data.old_processor,
        new=data.new_processor,
        controller_choice=data.controller_choice.value if data.controller_choice else None,
        contractual_days=data.contractual_days,
        effective_at=data.effective_at,
        categories=list(data.categories),
    )


def typed(batch: Sequence[CloudEvent], model: type[M]) -> tuple[list[tuple[str, M]], Refusals]:
    """Each event's data as ``model`` (as ``parse_event`` typed it), and the events refused."""
    valid: list[tuple[str, M]] = []
    refused: Refusals = {}
    for event in batch:
        try:
            valid.append((event.id, event.data_as(model)))
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:5])
            refused[event.id] = EventRejected(f"invalid {event.type} data: {fields}")
    return valid, refused


def settle(batch: Sequence[CloudEvent], refused: Refusals) -> None:
    """Name the refused events to the consumer (the others are stored): it dead-letters
    exactly those, with their reasons, and commits the poll."""
    if refused:
        raise RefusedEvents({event_id: exc.reason for event_id, exc in refused.items()})
