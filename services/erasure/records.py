"""A system's uploaded records, parsed as a stream, and flattened for CSV (pure).

Uploads are JSON (``[...]`` or ``{"records": [...]}``) or JSON Lines (one object per line).
``RecordParser`` is fed the bytes piece by piece and hands back the complete records each
piece finishes, so a 100 MB upload is never held whole; only one record (at most
``MAX_RECORD`` characters) is buffered at a time. A malformed upload raises
``RecordsError`` whose reason names the position, never the content.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable
from typing import Any

JSON = "application/json"
JSON_LINES = "application/x-ndjson"
CONTENT_TYPES = (JSON, JSON_LINES)
MAX_RECORD = 16 * 1024 * 1024  # characters buffered for one record before giving up
_WS = " \t\r\n"
_DECODER = json.JSONDecoder()


class RecordsError(ValueError):
    """An upload that does not parse; the message never carries its content."""


class RecordParser:
    """Push parser: ``feed`` bytes, get the records they complete; ``close`` at the end."""

    def __init__(self, content_type: str | None) -> None:
        kind = (content_type or "").split(";")[0].strip().lower()
        if kind not in CONTENT_TYPES:
            raise RecordsError(f"unsupported content type {kind or 'none'!r}")
        self._lines = kind == JSON_LINES
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._json = _JsonRecords()
        self._pending = ""
        self.count = 0
        self.line = 0

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """The records completed by ``data``."""
        return self._push(self._decode(data, final=False), final=False)

    def close(self) -> list[dict[str, Any]]:
        """The last records; RecordsError if the upload stops half-way."""
        return self._push(self._decode(b"", final=True), final=True)

    def _decode(self, data: bytes, final: bool) -> str:
        try:
            return self._text.decode(data, final)
        except UnicodeDecodeError:
            raise RecordsError(f"not UTF-8 text (after record {self.count})") from None

    def _push(self, text: str, final: bool) -> list[dict[str, Any]]:
        found = self._split_lines(text, final) if self._lines else self._json.feed(text, final)
        self.count += len(found)
        return found

    def _split_lines(self, text: str, final: bool) -> list[dict[str, Any]]:
        lines = (self._pending + text).split("\n")
        self._pending = "" if final else lines.pop()
        if len(self._pending) > MAX_RECORD:
            raise RecordsError(f"line {self.line + 1} is longer than {MAX_RECORD} characters")
        found = []
        for raw in lines:
            self.line += 1
            if raw.strip():
                found.append(_record(_loads(raw, f"line {self.line}"), f"line {self.line}"))
        return found


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordsError(f"{where}: invalid JSON at column {exc.colno}") from None


def _record(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordsError(f"{where}: a record must be a JSON object, not {type(value).__name__}")
    return value


class _JsonRecords:
    """The records of ``[...]`` or ``{"records": [...], ...}``, as the text arrives."""

    def __init__(self) -> None:
        self.buf, self.pos, self.state = "", 0, "start"
        self.key: str | None = None
        self.in_object = self.seen_records = False
        self.count = 0

    def feed(self, text: str, final: bool) -> list[dict[str, Any]]:
        self.buf, self.pos = self.buf[self.pos :] + text, 0
        found: list[dict[str, Any]] = []
        while self._step(found, final):
            pass
        if len(self.buf) - self.pos > MAX_RECORD:
            raise RecordsError(f"record {self.count + 1} is larger than {MAX_RECORD} characters")
        if final and self.state != "end":
            raise RecordsError(f"the JSON stops after record {self.count}")
        return found

    def _char(self) -> str | None:
        while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
            self.pos += 1
        return self.buf[self.pos] if self.pos < len(self.buf) else None

    def _value(self, final: bool) -> tuple[bool, Any]:
        """(complete, value) of the JSON value at pos; waits for a character after it."""
        try:
            value, end = _DECODER.raw_decode(self.buf, self.pos)
        except json.JSONDecodeError as exc:
            if final:
                raise RecordsError(f"invalid JSON, or it stops, after record {self.count}") from exc
            return False, None
        rest = self.buf[end:].lstrip(_WS)
        if not rest and not final:
            return False, None  # a number may go on in the next piece
        self.pos = end
        return True, value

    def _expect(self, char: str, allowed: str) -> None:
        if char not in allowed:
            raise RecordsError(f"unexpected character after record {self.count}")
        self.pos += 1

    def _step(self, found: list[dict[str, Any]], final: bool) -> bool:
        char = self._char()
        if char is None:
            return False
        if self.state == "start":
            self._expect(char, "[{")
            self.in_object = char == "{"
            self.state = "key" if self.in_object else "first_item"
        elif self.state in ("key", "next_key"):
            return self._step_key(char, final)
        elif self.state == "colon":
            self._expect(char, ":")
            self.state = "value"
        elif self.state == "value":
            return self._step_value(char, final)
        elif self.state == "after_value":
            self._expect(char, ",}")
            self.state = "next_key" if char == "," else self._end_object()
        elif self.state in ("first_item", "item"):
            return self._step_item(char, found, final)
        elif self.state == "after_item":
            self._expect(char, ",]")
            if char == ",":
                self.state = "item"
            else:
                self.state = "after_value" if self.in_object else "end"
        else:  # "end": only whitespace may follow
            raise RecordsError(f"data after the end of the JSON (record {self.count})")
        return True

    def _end_object(self) -> str:
        if not self.seen_records:
            raise RecordsError('a JSON object upload needs a "records" array')
        return "end"

    def _step_key(self, char: str, final: bool) -> bool:
        if char == "}" and self.state == "key":
            self.pos += 1
            self.state = self._end_object()
            return True
        if char != '"':
            raise RecordsError("expected a key in the JSON object")
        done, key = self._value(final)
        if done:
            self.key, self.state = key, "colon"
        return done

    def _step_value(self, char: str, final: bool) -> bool:
        if self.key == "records" and not self.seen_records:
            if char != "[":
                raise RecordsError('"records" must be an array')
            self.pos += 1
            self.seen_records, self.state = True, "first_item"
            return True
        done, _ = self._value(final)  # another key's value is read and dropped
        if done:
            self.state = "after_value"
        return done

    def _step_item(self, char: str, found: list[dict[str, Any]], final: bool) -> bool:
        if char == "]" and self.state == "first_item":
            self.pos += 1
            self.state = "after_value" if self.in_object else "end"
            return True
        done, value = self._value(final)
        if done:
            found.append(_record(value, f"record {self.count + 1}"))
            self.count += 1
            self.state = "after_item"
        return done


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """One CSV row: nested objects as dotted columns, lists as JSON text, null as empty."""
    row: dict[str, str] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            row.update(flatten(value, f"{name}."))
        else:
            row[name] = cell(value)
    return row


def cell(value: Any) -> str:
    """A JSON value as CSV text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def csv_lines(columns: list[str], rows: Iterable[dict[str, str]]) -> str:
    """CSV text (RFC 4180, CRLF) of ``rows`` under ``columns``; missing cells empty."""
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return out.getvalue()


def json_record(record: dict[str, Any]) -> str:
    """One record as compact JSON text (UTF-8 kept readable)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
