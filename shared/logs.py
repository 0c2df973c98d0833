"""Logging: JSON lines for machines, a plain line for a terminal; identifiers only, never values.

Every record carries the service, the current trace and span ids, and the ids bound with
``bind()`` (event id, request id, case id) while a record or an HTTP request is handled, so an
operator can follow one request through every service's logs. The JSON schema is documented in
docs/operations.md; its keys are stable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace

LogFormat = Literal["auto", "json", "text"]
# Ids that may be bound to the context; values are identifiers of Gardien's own aggregates,
# and where a record came from (topic, partition, offset).
BOUND_KEYS = (
    *("event_id", "request_id", "case_id", "breach_id", "command_id", "timer_id"),
    *("topic", "partition", "offset"),
)

_bound: ContextVar[dict[str, str]] = ContextVar("gardien_log_ids", default={})  # noqa: B039


@contextlib.contextmanager
def bind(**ids: str | None) -> Iterator[None]:
    """Add ``ids`` to every log record written inside the block (and in tasks it starts)."""
    unknown = set(ids) - set(BOUND_KEYS)
    if unknown:
        raise ValueError(f"not a loggable id: {', '.join(sorted(unknown))}")
    token = _bound.set({**_bound.get(), **{k: v for k, v in ids.items() if v}})
    try:
        yield
    finally:
        _bound.reset(token)


class ContextFilter(logging.Filter):
    """Adds the service, trace/span ids and the bound ids to each record."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        context = trace.get_current_span().get_span_context()
        record.trace_id = f"{context.trace_id:032x}" if context.is_valid else None
        record.span_id = f"{context.span_id:016x}" if context.is_valid else None
        record.ids = _bound.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, service, logger, message, ids, error."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": getattr(record, "service", None),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("trace_id", "span_id"):
            if getattr(record, key, None):
                entry[key] = getattr(record, key)
        entry.update(getattr(record, "ids", {}))
        if record.exc_info and record.exc_info[0] is not None:
            entry["error.type"] = record.exc_info[0].__name__
            entry["stack"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level service logger: message [ids]`` for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(service)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = dict(getattr(record, "ids", {}))
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            ids["trace_id"] = trace_id
        return f"{line} [{' '.join(f'{k}={v}' for k, v in ids.items())}]" if ids else line


def configure_logging(level: str, service: str, fmt: LogFormat = "auto") -> None:
    """Send every logger, FastStream's included, to stderr in one format."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # FastStream installs its own colourised handlers and stops propagation: undo that.
    for name in ("faststream", "faststream.access", "faststream.access.kafka", "uvicorn"):
        own = logging.getLogger(name)
        own.handlers[:] = []
        own.propagate = True
    quiet = ("aiokafka", "pymongo", "uvicorn.access")
    # HTTP clients log every URL at INFO, query strings included (a subject search holds
    # an e-mail): keep them to warnings.
    for name in (*quiet, "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
