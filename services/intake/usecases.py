"""Intake use cases: load -> decide (domain, rules engine) -> save with outbox -> relay."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.collection import AsyncCollection

from services.intake import domain, messages, state, updates
from services.intake.decisions import Decided, decide
from services.intake.details import parse_details
from services.intake.domain import Lifecycle, Status
from services.intake.repository import MongoRequests, MongoSubjectHistory
from shared import rules
from shared.clock import Clock, SystemClock
from shared.errors import TransientError, TransitionRefused
from shared.events import CloudEvent
from shared.events.inbound import RequestExtended, RequestReceived, RequestResponded, RequestStep
from shared.outbox import outbox_entry, relay, relay_all, seal_event, stored_entries
from shared.service import Runtime
from shared.subject_vault import SubjectVault

Update = updates.Update
CASE_CLOSED = "gardien.erasure.case.closed"


def key_id(request_id: str) -> str:
    """The subject key of one request: a new request is a new relationship, a new key."""
    return f"request:{request_id}"


STEP_MODELS: dict[str, type[RequestStep]] = {
    "extended": RequestExtended,
    "responded": RequestResponded,
}


@dataclass
class Intake:
    """The intake use cases; storage is resolved from the runtime once it has started."""

    runtime: Runtime
    policy: rules.Policy = field(default_factory=rules.default_policy)
    clock: Clock = field(default_factory=SystemClock)

    @property
    def requests(self) -> MongoRequests:
        return MongoRequests(self.runtime.db)

    @property
    def history(self) -> MongoSubjectHistory:
        return MongoSubjectHistory(self.runtime.db)

    @property
    def vault(self) -> SubjectVault:
        """Per-request keys of the subjects' identifiers and details (docs/intake.md)."""
        return SubjectVault(self.runtime.db)

    @property
    def broker(self) -> KafkaBroker:
        return self.runtime.broker

    @property
    def _collection(self) -> AsyncCollection[dict[str, Any]]:
        return self.requests.collection

    async def relay_pending(self) -> int:
        """Publish events a crash left in request documents."""
        return await relay_all(self.broker, self._collection)

    def subject_hashes(self, identifiers: dict[str, str]) -> list[str]:
        """The subject's pseudonyms (``shared.pseudonyms``): never the raw values."""
        return self.runtime.pseudonyms.refs(identifiers)

    async def receive(self, event: CloudEvent) -> None:
        """Record a new request once, whatever the number of deliveries of its event."""
        data = RequestReceived.model_validate(event.data)
        with self.runtime.span("intake.receive") as span:
            span.set_attribute("gardien.request_id", data.request_id)
            existing = await self.requests.get(data.request_id)
            if existing is None:
                doc = await self._new_request(event, data)
                created = await self.requests.add(doc)
                span.set_attribute("gardien.flags", ",".join(doc["flags"]))
            else:
                created = False
                if existing["source_event_id"] != event.id:
                    reason = "duplicate request_id: the first request stands"
                    await self._mutate(
                        data.request_id, event, lambda d: updates.refusal(d, event, reason)
                    )
            span.set_attribute("gardien.duplicate", not created)
            await relay(self.broker, self._collection, data.request_id)

    async def _new_request(self, event: CloudEvent, data: RequestReceived) -> dict[str, Any]:
        policy = self.policy
        receipt = rules.receipt_date(data.received_at, policy.timezone)
        lc = Lifecycle(Status.RECEIVED, receipt, policy.holiday_calendar)
        hashes = self.subject_hashes(data.subject.identifiers.present())
        right = data.right.value
        decision, details = await self._decide(data, receipt, hashes)
        kid, now, vault = key_id(data.request_id), self.clock.now(), self.vault
        identifiers = data.subject.identifiers.present()
        doc: dict[str, Any] = {
            "_id": data.request_id,
            "source_event_id": event.id,
            "version": 1,
            "right": right,
            "received_at": data.received_at,
            "received_tz": data.received_at.isoformat(),
            "channel": data.channel,
            "subject": {
                "kind": data.subject.kind.value,
                "identifiers": await vault.seal(kid, identifiers, "subject.identifiers", now),
            },
            "subject_refs": hashes,
            "details": await vault.seal(kid, data.details, "details", now) if data.details else {},
            "created_at": now,
            **state.fields(lc),
            **messages.jsonable(updates.decision_fields(decision)),
            "history": [updates.entry(Status.RECEIVED, event, data.received_at)],
            "refusals": [],
            "applied_events": [event.id],
        }
        subject = {"kind": data.subject.kind.value, "identifiers": identifiers}
        hold = details is not None and details.await_identity
        await self._queue(doc, event, subject, decision, hold=hold, vault=vault)
        return doc

    async def _decide(
        self, data: RequestReceived, receipt: Any, hashes: list[str]
    ) -> tuple[Decided, Any]:
        """The rules engine's decision on a new request (and its parsed details, if valid)."""
        right = data.right.value
        await self.history.record(hashes, data.request_id, right, receipt)
        past = await self.history.dates(hashes, right, data.request_id) if right == "access" else []
        try:
            details = parse_details(data.details)
            kind = data.subject.kind.value
            return decide(right, kind, details, receipt, self.policy, past), details
        except ValueError as exc:  # the request stands; a person reviews its details
            return Decided(flags=["details_invalid"], details_error=str(exc)[:500]), None

    async def _queue(
        self,
        doc: dict[str, Any],
        event: CloudEvent,
        subject: dict[str, Any],
        decision: Decided,
        *,
        hold: bool,
        vault: SubjectVault,
    ) -> None:
        """The new request's outgoing events, subjects sealed (held work waits for identity)."""
        kid, now, rid = key_id(doc["_id"]), self.clock.now(), doc["_id"]
        outgoing = [messages.accepted(event, doc)]
        if decision.anything:
            outgoing.append(messages.decided(event, rid, doc["right"], decision))
        if decision.work:
            due = doc["clock"]["effective_due_date"]
            work = messages.work_requested(event, rid, subject, decision, due)
            if hold:
                held = await seal_event(work, vault, kid, now)
                doc["held_work"] = [outbox_entry(held, work.data["case_id"])]
            else:
                outgoing.append(work)
                doc["open_work"] = [decision.work_case]
        pairs = [(e, str(e.data.get("case_id", rid))) for e in outgoing]
        doc["outbox"] = await stored_entries(pairs, vault, kid, now)
        doc["outbox_pending"] = True

    async def follow_up(self, event: CloudEvent) -> None:
        """Move a request on a follow-up event; an impossible one is refused and audited."""
        model = STEP_MODELS.get(event.type.removeprefix("gdpr.request."), RequestStep)
        step = model.model_validate(event.data)
        with self.runtime.span("intake.follow_up") as span:
            span.set_attribute("gardien.request_id", step.request_id)
            span.set_attribute("gardien.event_type", event.type)
            found = await self._mutate(
                step.request_id, event, lambda doc: self._transition(doc, event, step)
            )
            if not found:
                raise TransitionRefused(f"unknown request {step.request_id}")

    async def case_reported(self, event: CloudEvent) -> None:
        """Keep per-system progress of the request's erasure work; close when all is done."""
        case_id = str(event.data.get("case_id", ""))
        kind, _, rest = case_id.partition(":")
        request_id = str(event.data.get("request_id") or rest)
        if kind not in ("req", "obj") or not request_id:
            return  # retention and processor cases are not requests
        with self.runtime.span("intake.case_reported") as span:
            span.set_attribute("gardien.request_id", request_id)
            await self._mutate(request_id, event, lambda doc: updates.progress(doc, event, kind))
            if event.type == CASE_CLOSED:
                shredded = await self._shred(request_id)
                span.set_attribute("gardien.subject_keys_destroyed", shredded)

    async def _shred(self, request_id: str) -> int:
        """Destroy the request's key once its work is done; for an erasure, the subject's.

        The identifiers and details sealed under them become noise. An erasure also shreds
        the subject's earlier requests (found by pseudonym in ``subject_requests``); an
        objection ends only its own request's need for them.
        """
        vault, now = self.vault, self.clock.now()
        doc = await self.requests.get(request_id)
        ids = {request_id}
        if doc is not None and doc.get("right") == "erasure" and doc.get("subject_refs"):
            ids |= set(await self.history.requests_of(doc["subject_refs"]))
        return sum([await vault.destroy(key_id(rid), now) for rid in sorted(ids)])

    async def _mutate(
        self, request_id: str, event: CloudEvent, change: Callable[[dict[str, Any]], Update | None]
    ) -> bool:
        """Apply ``change`` once per event under the document's version; False if unknown."""
        for _ in range(8):
            doc = await self.requests.get(request_id)
            if doc is None:
                return False
            if event.id in doc.get("applied_events", []):
                break
            update = change(doc)
            if update is None:
                break
            update = updates.appended(doc, update, event.id)
            if await self.requests.update(request_id, doc["version"], update):
                break
        else:
            raise TransientError("request kept changing under a concurrent writer")
        await relay(self.broker, self._collection, request_id)
        return True

    def _transition(self, doc: dict[str, Any], event: CloudEvent, data: RequestStep) -> Update:
        before = state.lifecycle(doc)
        step = updates.step_of(event, data, self.policy.timezone)
        try:
            after = domain.apply(before, step)
        except TransitionRefused as exc:
            return updates.refusal(doc, event, exc.reason)
        return updates.moved(doc, event, data, before, after)
