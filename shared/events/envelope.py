"""CloudEvents 1.0 envelope: parse (structured or binary Kafka record), validate, build."""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
)

from shared.errors import EventRejected
from shared.events.binding import (
    Header,
    Mode,
    binary_envelope,
    binary_location,
    binary_record,
    content_mode,
    media_type,
)
from shared.events.common import Instant
from shared.events.registry import EVENT_TYPES, INTERNAL_TYPES, data_model

MAX_EVENT_BYTES = 1_000_000  # Apache Kafka's default record limit is 1 MiB; stay under it.

M = TypeVar("M", bound=BaseModel)
EventType = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def _json_media_type(value: object) -> object:
    """``application/json``, also written with a UTF-8 charset parameter or in capitals."""
    if not isinstance(value, str):
        return value
    kind, _, params = value.partition(";")
    charset = params.strip().lower().replace(" ", "")
    if (
        charset in ("", "charset=utf-8", 'charset="utf-8"')
        and media_type(kind) == "application/json"
    ):
        return "application/json"
    return value


DataContentType = Annotated[Literal["application/json"], BeforeValidator(_json_media_type)]


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope whose ``data`` has been validated against its type."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    source: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    type: EventType
    time: Instant
    datacontenttype: DataContentType = "application/json"
    subject: Annotated[str, StringConstraints(max_length=256)] | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    _payload: BaseModel | None = PrivateAttr(default=None)  # the typed data, once validated

    def __eq__(self, other: object) -> bool:
        # The same event whether or not its typed data has been built yet.
        if not isinstance(other, CloudEvent):
            return NotImplemented
        return self.__dict__ == other.__dict__ and self.model_extra == other.model_extra

    def payload(self) -> BaseModel:
        """The typed data of this event: validated once (by ``parse_event``), then kept."""
        if self._payload is None:
            model = data_model(self.type)
            if model is None:
                raise EventRejected(f"unknown event type {self.type!r}")
            self._payload = model.model_validate(self.data)
        return self._payload

    def data_as(self, model: builtins.type[M]) -> M:
        """The typed data as ``model``: the one ``parse_event`` built when it is one, else
        validated now (a consumer's own view of an event); ``ValidationError`` if invalid."""
        payload = self.payload() if data_model(self.type) is not None else None
        return payload if isinstance(payload, model) else model.model_validate(self.data)

    def to_json(self) -> bytes:
        """Structured-mode JSON bytes of the event."""
        return self.model_dump_json(exclude_none=True).encode()

    def to_binary(self) -> tuple[list[tuple[str, bytes]], bytes]:
        """Binary-mode (headers, value) of the event: ``ce_*`` headers, the data as value."""
        return binary_record(self.model_dump(mode="json", exclude_none=True))


def _describe(error: ValidationError, where: Callable[[str], str] = str) -> str:
    """Field paths and messages of a validation error, never the offending values."""
    parts = []
    for item in error.errors(include_input=False, include_url=False)[:5]:
        loc = [str(p) for p in item["loc"]]
        path = ".".join([where(loc[0]), *loc[1:]]) if loc else "event"
        parts.append(f"{path}: {item['msg']}")
    more = error.error_count() - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _structured(raw: bytes | str | dict[str, Any]) -> dict[str, Any]:
    """The JSON object of a structured-mode event."""
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
    return raw


def _binary(raw: bytes | str | dict[str, Any], headers: Iterable[Header]) -> dict[str, Any]:
    """The attributes and data of a binary-mode event."""
    if isinstance(raw, dict):
        raise EventRejected("binary mode: the record value must be the event data as bytes")
    value = raw.encode() if isinstance(raw, str) else raw
    if len(value) > MAX_EVENT_BYTES:
        raise EventRejected(f"value is {len(value)} bytes; the limit is {MAX_EVENT_BYTES}")
    return binary_envelope(headers, value)


def parse_event(
    raw: bytes | str | dict[str, Any],
    headers: Iterable[Header] = (),
    record_time_ms: int | None = None,
    *,
    check_data: bool = True,
) -> CloudEvent:
    """Parse and validate one event, raising EventRejected with a value-free reason.

    ``headers`` are the Kafka record's headers: they choose the content mode (structured
    or binary, see ``binding``). An event without ``time`` takes the record's timestamp
    (``record_time_ms``, milliseconds since the epoch) when there is one.
    """
    headers = list(headers)
    binary = content_mode(headers) is Mode.BINARY
    envelope = _binary(raw, headers) if binary else _structured(raw)
    if "time" not in envelope and record_time_ms is not None and record_time_ms > 0:
        envelope = {**envelope, "time": datetime.fromtimestamp(record_time_ms / 1000, UTC)}
    try:
        event = CloudEvent.model_validate(envelope)
    except ValidationError as exc:
        reason = _describe(exc, binary_location) if binary else _describe(exc)
        mode = "binary-mode " if binary else ""
        raise EventRejected(f"invalid {mode}CloudEvent envelope: {reason}") from None
    if check_data:  # the audit trail keeps Gardien's own events whatever their data
        _check_data(event)
    return event


def _check_data(event: CloudEvent) -> None:
    model = data_model(event.type)
    if model is None:
        known = ", ".join(sorted(EVENT_TYPES)) + ", " + ", ".join(sorted(INTERNAL_TYPES))
        raise EventRejected(f"unknown event type {event.type!r}; known types: {known}")
    try:
        event._payload = model.model_validate(event.data)
    except ValidationError as exc:
        raise EventRejected(f"invalid data for {event.type}: {_describe(exc)}") from None


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
