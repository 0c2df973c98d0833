"""CloudEvents 1.0 structured-mode envelope: parse, validate, build."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from shared.errors import EventRejected
from shared.events.common import Data, Instant
from shared.events.registry import EVENT_TYPES, INTERNAL_PREFIXES, data_model

MAX_EVENT_BYTES = 1_000_000  # Apache Kafka's default record limit is 1 MiB; stay under it.

EventType = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope whose ``data`` has been validated against its type."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    source: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    type: EventType
    time: Instant
    datacontenttype: Literal["application/json"] = "application/json"
    subject: Annotated[str, StringConstraints(max_length=256)] | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    def payload(self) -> Data:
        """The typed data of this event (already validated by ``parse_event``)."""
        model = data_model(self.type)
        assert model is not None  # parse_event refuses unknown types
        return model.model_validate(self.data)

    def to_json(self) -> bytes:
        """Structured-mode JSON bytes of the event."""
        return self.model_dump_json(exclude_none=True).encode()


def _describe(error: ValidationError) -> str:
    """Field paths and messages of a validation error, never the offending values."""
    parts = []
    for item in error.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "event"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_event(raw: bytes | str | dict[str, Any]) -> CloudEvent:
    """Parse and validate one event, raising EventRejected with a value-free reason."""
    if isinstance(raw, bytes | str):
        if len(raw) > MAX_EVENT_BYTES:
            raise EventRejected(f"event is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}")
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EventRejected(f"not JSON: {exc.msg} at position {exc.pos}") from None
        except RecursionError:
            raise EventRejected("not JSON this service accepts: nested too deeply") from None
        except UnicodeDecodeError as exc:
            raise EventRejected(f"not UTF-8 text: bad byte at position {exc.start}") from None
    if not isinstance(raw, dict):
        raise EventRejected("a CloudEvent must be a JSON object")
    try:
        event = CloudEvent.model_validate(raw)
    except ValidationError as exc:
        raise EventRejected(f"invalid CloudEvent envelope: {_describe(exc)}") from None
    model = data_model(event.type)
    if model is None:
        known = (
            ", ".join(sorted(EVENT_TYPES)) + ", " + ", ".join(f"{p}*" for p in INTERNAL_PREFIXES)
        )
        raise EventRejected(f"unknown event type {event.type!r}; known types: {known}")
    try:
        model.model_validate(event.data)
    except ValidationError as exc:
        raise EventRejected(f"invalid data for {event.type}: {_describe(exc)}") from None
    return event


def new_event(
    event_type: str,
    data: dict[str, Any],
    *,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
    subject: str | None = None,
) -> CloudEvent:
    """Build an event Gardien produces; derived events pass a deterministic ``event_id``."""
    return CloudEvent(
        specversion="1.0",
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=event_type,
        time=time or datetime.now(UTC),
        subject=subject,
        data=data,
    )


AGGREGATE_FIELDS = (
    "request_id",
    "breach_id",
    "contract_id",
    "old_processor",
    "processor",
    "matter",
    "command_id",
    "case_id",
    "timer_id",
)


def aggregate_key(event: CloudEvent) -> str:
    """The Kafka key of an event: its aggregate id, so order holds per aggregate.

    Events without one (a prospect contact) are keyed by event id; never by a personal
    identifier.
    """
    for name in AGGREGATE_FIELDS:
        value = event.data.get(name)
        if isinstance(value, str) and value:
            return value
    return event.id
