"""The CloudEvents Kafka protocol binding: which content mode a record uses, binary attributes.

Rules (Kafka protocol binding 1.0, section 3): a ``content-type`` header starting with
``application/cloudevents`` (case-insensitive) means structured mode; otherwise the record is
in binary mode, where each attribute travels in a ``ce_<name>`` header (UTF-8), the
``content-type`` header is ``datacontenttype`` and the record value is the data as-is.
Gardien also reads a record with neither a CloudEvents content type nor any ``ce_`` header as
structured (a bare JSON event, as its producers always sent). The binding has no batch mode.
Reasons never quote a header value or the value: they may hold personal data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from shared.errors import EventRejected

Header = tuple[str, bytes | None]
CE_PREFIX = "ce_"
CONTENT_TYPE = "content-type"
STRUCTURED_MEDIA_TYPE = "application/cloudevents"
BATCH_MEDIA_TYPE = "application/cloudevents-batch"
JSON_FORMAT = "application/cloudevents+json"
REQUIRED = ("specversion", "id", "source", "type")
ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]{1,64}$")
NOT_ATTRIBUTES = frozenset({"data", "data_base64", "datacontenttype"})


class Mode(StrEnum):
    STRUCTURED = "structured"
    BINARY = "binary"


def media_type(value: str) -> str:
    """The media type of a content type, lower-cased, without its parameters."""
    return value.split(";", 1)[0].strip().lower()


def content_mode(headers: Iterable[Header]) -> Mode:
    """The content mode of a record, from its headers; refuses modes Gardien cannot read."""
    headers = list(headers)
    content_type = _single(headers, CONTENT_TYPE)
    if content_type is not None:
        kind = media_type(content_type)
        if kind.startswith(BATCH_MEDIA_TYPE):
            raise EventRejected(
                "batch content mode is not part of the CloudEvents Kafka binding; "
                "send one event per record"
            )
        if kind.startswith(STRUCTURED_MEDIA_TYPE):
            if kind != JSON_FORMAT:
                raise EventRejected(f"structured mode: only the JSON event format ({JSON_FORMAT})")
            return Mode.STRUCTURED
    if any(name.lower().startswith(CE_PREFIX) for name, _ in headers):
        return Mode.BINARY
    return Mode.STRUCTURED


def binary_envelope(headers: Iterable[Header], value: bytes | None) -> dict[str, Any]:
    """The event (attributes and data) of a binary-mode record, not yet validated."""
    envelope: dict[str, Any] = {}
    for name, raw in headers:
        lowered = name.lower()
        if lowered == CONTENT_TYPE:
            envelope["datacontenttype"] = _text(name, raw)
            continue
        if not lowered.startswith(CE_PREFIX):
            continue  # other headers (traceparent, ...) are not event attributes
        attribute = lowered[len(CE_PREFIX) :]
        if attribute in NOT_ATTRIBUTES:
            raise EventRejected(f"binary mode: header {lowered} is not a CloudEvents attribute")
        if not ATTRIBUTE_NAME.match(attribute):  # the name is not quoted: it could be anything
            raise EventRejected(
                "binary mode: a ce_ header is not named ce_<attribute> "
                "(attribute names are lower-case letters and digits)"
            )
        if attribute in envelope:
            raise EventRejected(f"binary mode: header {lowered} appears more than once")
        envelope[attribute] = _text(lowered, raw)
    missing = [f"{CE_PREFIX}{a}" for a in REQUIRED if a not in envelope]
    if missing:
        raise EventRejected(f"binary mode: missing header {', '.join(missing)}")
    if value:
        envelope["data"] = _data(value)
    return envelope


def binary_record(envelope: dict[str, Any]) -> tuple[list[tuple[str, bytes]], bytes]:
    """(headers, value) of a JSON-ready event in binary mode: the inverse of ``binary_envelope``."""
    headers = []
    for name, attribute in envelope.items():
        if name == "data":
            continue
        text = attribute if isinstance(attribute, str) else json.dumps(attribute)
        header = CONTENT_TYPE if name == "datacontenttype" else f"{CE_PREFIX}{name}"
        headers.append((header, text.encode()))
    return headers, json.dumps(envelope.get("data", {}), separators=(",", ":")).encode()


def binary_location(attribute: str) -> str:
    """Where a binary-mode attribute travels, for error messages."""
    if attribute == "data":
        return "the record value"
    if attribute == "datacontenttype":
        return f"header {CONTENT_TYPE}"
    return f"header {CE_PREFIX}{attribute}"


def _single(headers: list[Header], wanted: str) -> str | None:
    values = [(n, v) for n, v in headers if n.lower() == wanted]
    if len(values) > 1:
        raise EventRejected(f"header {wanted} appears more than once")
    return _text(wanted, values[0][1]) if values else None


def _text(name: str, raw: bytes | None) -> str:
    if raw is None:
        raise EventRejected(f"header {name} has no value")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventRejected(f"header {name} is not UTF-8: bad byte at {exc.start}") from None


def _data(value: bytes) -> object:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise EventRejected(f"binary mode: value not JSON: {exc.msg} at {exc.pos}") from None
    except RecursionError:
        raise EventRejected("binary mode: value is JSON nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise EventRejected(f"binary mode: value not UTF-8: bad byte at {exc.start}") from None
