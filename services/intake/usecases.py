"""Intake use cases: load -> decide (domain) -> save with outbox -> relay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.collection import AsyncCollection

from services.intake import domain
from services.intake.domain import Status
from services.intake.repository import MongoRequests
from shared.errors import TransientError, TransitionRefused
from shared.events import CloudEvent, new_event
from shared.events.inbound import RequestReceived, RequestResponded, RequestStep
from shared.outbox import outbox_entry, outbox_push, relay, relay_all
from shared.service import Runtime

SOURCE = "gardien/intake"


@dataclass
class Intake:
    """The intake use cases; storage is resolved from the runtime once it has started."""

    runtime: Runtime

    @property
    def requests(self) -> MongoRequests:
        return MongoRequests(self.runtime.db)

    @property
    def broker(self) -> KafkaBroker:
        return self.runtime.broker

    @property
    def _collection(self) -> AsyncCollection[dict[str, Any]]:
        return self.requests.collection

    async def relay_pending(self) -> int:
        """Publish events a crash left in request documents."""
        return await relay_all(self.broker, self._collection)

    async def receive(self, event: CloudEvent) -> None:
        """Record a new request once, whatever the number of deliveries of its event."""
        data = RequestReceived.model_validate(event.data)
        with self.runtime.span("intake.receive") as span:
            span.set_attribute("gardien.request_id", data.request_id)
            accepted = new_event(
                "gardien.request.accepted",
                {
                    "request_id": data.request_id,
                    "right": data.right.value,
                    "status": Status.RECEIVED.value,
                    "received_at": data.received_at.isoformat(),
                    "subject_kind": data.subject.kind.value,
                },
                source=SOURCE,
                event_id=f"{event.id}:accepted",
                time=event.time,
            )
            doc = {
                "_id": data.request_id,
                "source_event_id": event.id,
                "version": 1,
                "right": data.right.value,
                "status": Status.RECEIVED.value,
                "resume_to": Status.RECEIVED.value,
                "received_at": data.received_at,
                "received_tz": data.received_at.isoformat(),
                "channel": data.channel,
                "subject": data.subject.model_dump(mode="json"),
                "details": data.details or {},
                "created_at": datetime.now(UTC),
                "history": [_step(Status.RECEIVED, data.received_at, event.id)],
                "applied_events": [event.id],
                "outbox": [outbox_entry(accepted, data.request_id)],
                "outbox_pending": True,
            }
            span.set_attribute("gardien.duplicate", not await self.requests.add(doc))
            await relay(self.broker, self._collection, data.request_id)

    async def follow_up(self, event: CloudEvent) -> None:
        """Move a request on a follow-up event, or refuse an impossible transition."""
        step = RequestStep.model_validate(event.data)
        with self.runtime.span("intake.follow_up") as span:
            span.set_attribute("gardien.request_id", step.request_id)
            span.set_attribute("gardien.event_type", event.type)
            for _ in range(5):
                doc = await self.requests.get(step.request_id)
                if doc is None:
                    raise TransitionRefused(f"unknown request {step.request_id}")
                if event.id in doc.get("applied_events", []):
                    break
                update = self._transition(doc, event, step)
                if await self.requests.update(step.request_id, doc["version"], update):
                    break
            else:
                raise TransientError("request kept changing under a concurrent writer")
            await relay(self.broker, self._collection, step.request_id)

    def _transition(
        self, doc: dict[str, Any], event: CloudEvent, step: RequestStep
    ) -> dict[str, Any]:
        current, resume_to = Status(doc["status"]), Status(doc.get("resume_to", doc["status"]))
        kind = event.type.removeprefix("gdpr.request.")
        new = _next_status(kind, current, resume_to, event)
        changed = new_event(
            "gardien.request.status_changed",
            {
                "request_id": step.request_id,
                "from": current.value,
                "to": new.value,
                "cause": event.type,
                "at": step.at.isoformat(),
            },
            source=SOURCE,
            event_id=f"{event.id}:status",
            time=event.time,
        )
        sets: dict[str, Any] = {"status": new.value}
        if new in domain.PAUSED:
            sets["resume_to"] = current.value
        push = outbox_push([(changed, step.request_id)])
        return {
            "$set": {**sets, **push["$set"]},
            "$push": {
                **push["$push"],
                "history": _step(new, step.at, event.id, event.type, event.data),
                "applied_events": {"$each": [event.id], "$slice": -200},
            },
        }


def _next_status(kind: str, current: Status, resume_to: Status, event: CloudEvent) -> Status:
    if kind == "info_requested":
        return domain.after_info_requested(current, event.data.get("reason"))
    if kind == "info_received":
        return domain.after_info_received(current, resume_to)
    if kind == "identity_verified":
        return domain.after_identity_verified(current, resume_to)
    if kind == "extended":
        return domain.after_extended(current)
    if kind == "responded":
        return domain.after_responded(current, RequestResponded.model_validate(event.data).outcome)
    raise TransitionRefused(f"intake does not handle {kind}")


def _step(
    status: Status,
    at: datetime,
    event_id: str,
    cause: str = "gdpr.request.received",
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    extra: dict[str, Any] = {
        k: data[k] for k in ("reasons", "reason", "outcome") if data and k in data
    }
    return {"status": status.value, "at": at, "event_id": event_id, "cause": cause, **extra}
