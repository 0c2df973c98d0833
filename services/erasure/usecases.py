"""Erasure use cases: load -> decide (domain) -> save case and events in one write -> relay."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from services.erasure import domain, holdcases, holds, messages, planning
from services.erasure.connector import HttpConnector
from services.erasure.domain import Case, Effect
from services.erasure.registry import Registry
from services.erasure.repository import Events, MongoCases
from services.erasure.settings import ErasureSettings
from shared.clock import Clock
from shared.errors import EventRejected, TransientError, TransitionRefused
from shared.events import CloudEvent
from shared.events.inbound import (
    ErasureOutcome,
    ErasureResult,
    ProcessorDeletionCertified,
    ProcessorReplaced,
)
from shared.outbox import relay, relay_all
from shared.service import Runtime

log = logging.getLogger(__name__)

OUTCOMES = {o.value for o in ErasureOutcome}

Change = Callable[[Case], Events | None]
HttpCall = tuple[str, str, CloudEvent]  # case id, system, command


@dataclass
class Erasure:
    """The erasure use cases; storage is resolved from the runtime once it has started."""

    runtime: Runtime
    registry: Registry
    settings: ErasureSettings
    clock: Clock
    connector: HttpConnector

    @property
    def cases(self) -> MongoCases:
        return MongoCases(self.runtime.db)

    @property
    def broker(self) -> KafkaBroker:
        return self.runtime.broker

    async def relay_pending(self) -> int:
        """Publish events a crash left in case documents."""
        return await relay_all(self.broker, self.cases.collection)

    async def open_work(self, event: CloudEvent) -> None:
        """Open the case an erasure work item asks for (once, whatever the deliveries)."""
        try:
            work = planning.WorkRequested.model_validate(event.data)
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:5])
            raise EventRejected(f"invalid erasure work item: {fields}") from None
        with self.runtime.span("erasure.open_work") as span:
            span.set_attribute("gardien.case_id", work.case_id)
            if work.origin == "processor":
                if work.processor is None:
                    raise TransitionRefused("a processor work item needs processor terms")
                await self._open_processor(work.case_id, work.processor)
                return
            registry = planning.apply_routes(self.registry, await self.cases.routes())
            now = self.clock.now()
            case = planning.plan_case(work, registry, self.settings, now)
            await holdcases.withhold_new(self, case, work)  # the last gate (R-RET-4)
            await self._open(case)

    async def replace_processor(self, event: CloudEvent) -> None:
        """Order the old processor to delete or return everything; route to the new one."""
        data = ProcessorReplaced.model_validate(event.data)
        day = domain.local_day(data.effective_at).isoformat()
        change = planning.ProcessorChange(
            old=data.old_processor,
            new=data.new_processor,
            controller_choice=data.controller_choice.value if data.controller_choice else None,
            contractual_days=data.contractual_days,
            effective_at=data.effective_at,
            categories=list(data.categories),
        )
        with self.runtime.span("erasure.replace_processor") as span:
            span.set_attribute("gardien.processor", data.old_processor)
            await self._open_processor(f"proc:{data.old_processor}:{day}", change)

    async def _open_processor(self, case_id: str, change: planning.ProcessorChange) -> None:
        now = self.clock.now()
        await self.cases.put_route(change.old, change.new, change.categories, now)
        await self._open(
            planning.plan_processor_case(case_id, change, self.registry, self.settings, now)
        )

    async def _open(self, case: Case) -> None:
        now = self.clock.now()
        effects = domain.advance(case, now)
        events = [messages.case_event(case, "opened", now)]
        events += self._effect_events(case, effects, now)
        if not case.systems and case.skipped:
            # Systems hold the data but none can be addressed: visible, never closed.
            case.state = "escalated"
            reason = "no connected system could be addressed"
            events.append(messages.case_event(case, "escalated", now, reason=reason))
        elif domain.ready_to_close(case):
            domain.close(case, now, planning.art19_record(case, self.registry))
            events.append(messages.case_event(case, "closed", now))
        case.version = 1
        created = await self.cases.add(case, events)
        await self._relay(case)
        if created:
            await self._call_http(self._http_calls(case, events))

    async def record_result(self, event: CloudEvent) -> None:
        """Apply a system's answer; a duplicate changes nothing, an unknown one is refused."""
        data = ErasureResult.model_validate(event.data)
        if not data.command_id.endswith(f":{data.system}"):
            raise TransitionRefused(f"command {data.command_id} is not for system {data.system}")
        case_id, key = holds.locate(data.command_id, data.system)
        retained = data.retained_until.date().isoformat() if data.retained_until else None
        with self.runtime.span("erasure.record_result") as span:
            span.set_attribute("gardien.command_id", data.command_id)
            await self._apply_result(
                case_id,
                key,
                data.outcome.value,
                data.detail,
                retained,
                event.id,
            )

    async def _apply_result(
        self,
        case_id: str,
        system: str,
        outcome: str,
        detail: str | None,
        retained_until: str | None,
        applied: str,
    ) -> None:
        def change(case: Case) -> Events | None:
            if system not in case.systems:
                raise TransitionRefused(f"case {case_id} sent no command to {system}")
            now = self.clock.now()
            if not domain.acknowledge(case, system, outcome, now, detail, retained_until):
                return None  # a duplicate or late answer: nothing changes
            return self._progress_events(case, now, system=system, outcome=outcome)

        await self._update(case_id, change, applied, f"unknown command {case_id}:{system}")

    async def certify_deletion(self, event: CloudEvent) -> None:
        """Close the replacement case(s) of a processor on its deletion certificate."""
        data = ProcessorDeletionCertified.model_validate(event.data)
        ids = await self.cases.for_processor(data.processor)
        if not ids:
            raise TransitionRefused(f"no replacement case for processor {data.processor}")
        on = domain.local_day(data.at)

        def change(case: Case) -> Events | None:
            now = self.clock.now()
            if not domain.certify(case, on, data.certificate_ref, now):
                return None
            return self._progress_events(case, now, certificate=data.certificate_ref)

        for case_id in ids:
            await self._update(case_id, change, event.id, f"unknown case {case_id}")

    async def sweep(self) -> int:
        """Advance every case with due work: retries, escalations, overdue certificates."""
        ids = await self.cases.due(self.clock.now(), self.settings.sweep_batch)
        for case_id in ids:
            try:
                await self.advance(case_id)
            except Exception:  # one broken case must not stop the others
                log.exception("could not advance case %s", case_id)
        return len(ids)

    async def advance(self, case_id: str) -> None:
        """Send due retries and escalate what timed out, for one case."""
        calls: list[HttpCall] = []

        def change(case: Case) -> Events | None:
            now = self.clock.now()
            before = case.next_due_at
            effects = domain.advance(case, now)
            if not effects and case.next_due_at == before:
                return None
            events = self._effect_events(case, effects, now)
            calls[:] = self._http_calls(case, events)
            return events

        with self.runtime.span("erasure.advance") as span:
            span.set_attribute("gardien.case_id", case_id)
            if await self._update(case_id, change, None, f"unknown case {case_id}"):
                await self._call_http(calls)

    def _effect_events(self, case: Case, effects: list[Effect], now: Any) -> Events:
        events: Events = []
        for effect in effects:
            if effect.kind == "issue" and effect.system:
                events.append(messages.command_issued(case, case.systems[effect.system], now))
            elif effect.kind == "escalate":
                events.append(
                    messages.case_event(
                        case, "escalated", now, system=effect.system, reason=effect.reason
                    )
                )
        return events

    def _progress_events(self, case: Case, now: Any, **extra: Any) -> Events:
        events = [messages.case_event(case, "progressed", now, **extra)]
        if domain.ready_to_close(case):
            domain.close(case, now, planning.art19_record(case, self.registry))
            events.append(messages.case_event(case, "closed", now))
        return events

    async def _update(
        self, case_id: str, change: Change, applied: str | None, missing: str
    ) -> bool:
        """Load, change and save with an optimistic lock; True when something was written."""
        for _ in range(5):
            loaded = await self.cases.load(case_id)
            if loaded is None:
                raise TransitionRefused(missing)
            if applied is not None and applied in loaded.applied:
                await self._relay(loaded.case)  # a crash may have come before the relay
                return False
            case, version = loaded.case, loaded.case.version
            events = change(case)
            if events is None:
                return False
            outbox = loaded.outbox + await self.cases.entries(case_id, events)
            if await self.cases.save(case, version, outbox, applied):
                await self._relay(case)
                return True
        raise TransientError(f"case {case_id} kept changing under a concurrent writer")

    async def _relay(self, case: Case) -> None:
        """Publish the case's queued events; once it is closed, shred its identifiers.

        The key goes only after the relay, so the commands queued with the closing update
        are still sent; a closed case needs identifiers no more (``domain.close``).
        """
        await relay(self.broker, self.cases.collection, case.case_id)
        if case.state == "closed":
            await self.cases.destroy_key(case.case_id, self.clock.now())

    def _http_calls(self, case: Case, events: Events) -> list[HttpCall]:
        return [
            (case.case_id, holds.locate(e.data["command_id"], e.data["system"])[1], e)
            for e, _ in events
            if e.type == "gardien.erasure.command.issued" and e.data.get("transport") == "http"
        ]

    async def _call_http(self, calls: list[HttpCall]) -> None:
        for case_id, system, command in calls:
            loaded = await self.cases.load(case_id)
            url = loaded.case.systems[system].url if loaded else None
            if url is None:
                continue
            reply = await self.connector.deliver(url, command)
            outcome = reply.result and str(reply.result.get("outcome"))
            if reply.result is not None and outcome in OUTCOMES:
                until = reply.result.get("retained_until")
                await self._apply_result(
                    case_id,
                    system,
                    outcome,
                    reply.result.get("detail"),
                    str(until)[:10] if until else None,
                    f"{command.id}:http",
                )
            elif not reply.accepted:
                await self._note_failure(case_id, system, reply.error or "unknown outcome")

    async def _note_failure(self, case_id: str, system: str, error: str) -> None:
        def change(case: Case) -> Events | None:
            domain.delivery_failed(case, system, self.clock.now(), error)
            return []

        await self._update(case_id, change, None, f"unknown case {case_id}")
