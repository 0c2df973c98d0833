"""Uploads parsed as a stream (JSON, {"records": ...}, JSON Lines) and flattened for CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from services.erasure.records import (
    JSON,
    JSON_LINES,
    RecordParser,
    RecordsError,
    csv_lines,
    flatten,
)

RECORDS = [
    {"id": 1, "email": "a@example.org", "address": {"city": "Lyon", "geo": {"lat": 45.7}}},
    {"id": 2, "tags": ["x", "y"], "vip": True, "note": None, "amount": 12.5},
    {"id": 3, "text": 'déjà vu, "quoted"\nnew line'},
]


def parse(data: bytes, content_type: str, piece: int) -> list[dict[str, Any]]:
    parser = RecordParser(content_type)
    found = []
    for start in range(0, len(data), piece):
        found += parser.feed(data[start : start + piece])
    return found + parser.close()


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 64, 1 << 20])
def test_a_json_array_parses_whatever_the_cut(piece: int) -> None:
    data = json.dumps(RECORDS, indent=2, ensure_ascii=False).encode()
    assert parse(data, JSON, piece) == RECORDS


@pytest.mark.parametrize("piece", [1, 5, 1 << 20])
def test_a_records_object_parses_and_other_keys_are_dropped(piece: int) -> None:
    body = {"system": "crm", "count": 3, "records": RECORDS, "next": None, "n": 12345}
    assert parse(json.dumps(body).encode(), JSON, piece) == RECORDS


@pytest.mark.parametrize("piece", [1, 4, 1 << 20])
def test_json_lines_parse_blank_lines_skipped(piece: int) -> None:
    data = "\n".join(json.dumps(r, ensure_ascii=False) for r in RECORDS) + "\n\n"
    assert parse(data.encode(), JSON_LINES + "; charset=utf-8", piece) == RECORDS
    no_final_newline = "\n".join(json.dumps(r) for r in RECORDS).encode()
    assert parse(no_final_newline, JSON_LINES, piece) == RECORDS


def test_records_come_out_as_the_pieces_complete_them() -> None:
    parser = RecordParser(JSON)
    assert parser.feed(b'[{"a": 1}, {"b"') == [{"a": 1}]
    assert parser.feed(b': 2}, {"c": 3}') == [{"b": 2}]  # {"c": 3} waits for what follows
    assert parser.feed(b"]") == [{"c": 3}]
    assert parser.close() == [] and parser.count == 3


def test_empty_uploads_have_no_records() -> None:
    assert parse(b"[]", JSON, 1) == [] and parse(b' {"records": []} ', JSON, 1) == []
    assert parse(b"", JSON_LINES, 1) == []


@pytest.mark.parametrize(
    ("data", "content_type", "reason"),
    [
        (b"[1, 2]", JSON, "record 1: a record must be a JSON object"),
        (b'[{"a": 1}, {"a": ', JSON, "stops, after record 1"),
        (b'[{"a": 1} {"b": 2}]', JSON, "unexpected character after record 1"),
        (b'{"items": []}', JSON, 'needs a "records" array'),
        (b'{"records": {}}', JSON, '"records" must be an array'),
        (b"[] []", JSON, "data after the end"),
        (b"<html>", JSON, "unexpected character"),
        (b'{"a": 1}\nnot json\n', JSON_LINES, "line 2: invalid JSON"),
        (b'{"a": 1}\n[1]\n', JSON_LINES, "line 2: a record must be a JSON object"),
        (b'[{"a": "\xff"}]', JSON, "not UTF-8"),
    ],
)
def test_garbage_is_refused_with_a_reason_that_quotes_nothing(
    data: bytes, content_type: str, reason: str
) -> None:
    with pytest.raises(RecordsError, match=reason.replace("(", r"\(")) as caught:
        parse(data, content_type, 3)
    assert "html" not in str(caught.value) and "not json" not in str(caught.value)


def test_an_unknown_content_type_is_refused() -> None:
    with pytest.raises(RecordsError, match="unsupported content type 'text/csv'"):
        RecordParser("text/csv")
    with pytest.raises(RecordsError, match="'none'"):
        RecordParser(None)


def test_a_record_too_large_to_buffer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.erasure.records.MAX_RECORD", 100)
    parser = RecordParser(JSON)
    parser.feed(b'[{"a": "' + b"x" * 50)
    with pytest.raises(RecordsError, match="larger than 100"):
        parser.feed(b"x" * 80)
    lines = RecordParser(JSON_LINES)
    with pytest.raises(RecordsError, match="longer than 100"):
        lines.feed(b"y" * 150)


def test_flatten_gives_dotted_columns_and_text_cells() -> None:
    assert flatten(RECORDS[0]) == {
        "id": "1",
        "email": "a@example.org",
        "address.city": "Lyon",
        "address.geo.lat": "45.7",
    }
    assert flatten(RECORDS[1]) == {
        "id": "2",
        "tags": '["x","y"]',
        "vip": "true",
        "note": "",
        "amount": "12.5",
    }
    assert flatten({"empty": {}}) == {"empty": "{}"}


def test_csv_lines_read_back_with_the_csv_module() -> None:
    rows = [flatten(r) for r in RECORDS]
    columns = list(dict.fromkeys(c for row in rows for c in row))
    text = csv_lines(columns, [dict(zip(columns, columns, strict=True)), *rows])
    back = list(csv.DictReader(io.StringIO(text, newline="")))
    assert back[2]["text"] == RECORDS[2]["text"] and back[0]["address.city"] == "Lyon"
    assert back[1]["address.city"] == "" and len(back) == 3
