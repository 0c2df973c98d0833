"""Logs: JSON lines with trace and bound ids, no colour codes, one format for every logger."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from shared.logs import bind, configure_logging


@pytest.fixture(autouse=True)
def _restore_root() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:], root.level = handlers, level


def test_json_lines_carry_service_trace_and_bound_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "intake", "json")
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("work") as span, bind(event_id="ev-1", request_id="REQ-1"):
        logging.getLogger("services.intake").info("recorded %s", "REQ-1")
    logging.getLogger("services.intake").warning("outside")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    first, second = lines
    assert first["service"] == "intake" and first["level"] == "INFO"
    assert first["message"] == "recorded REQ-1"
    assert first["trace_id"] == f"{span.get_span_context().trace_id:032x}"
    assert (first["event_id"], first["request_id"]) == ("ev-1", "REQ-1")
    assert "event_id" not in second and "trace_id" not in second


def test_faststream_logs_go_through_the_same_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "audit", "json")
    logging.getLogger("faststream").info("broker started")
    err = capsys.readouterr().err
    assert "\x1b[" not in err
    assert json.loads(err.splitlines()[-1])["logger"] == "faststream"


def test_errors_name_their_type(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "erasure", "json")
    try:
        raise TimeoutError("slow")
    except TimeoutError:
        logging.getLogger("x").exception("gave up")
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1].split("\n")[0])
    assert entry["error.type"] == "TimeoutError"


def test_text_format_for_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "deadlines", "text")
    with bind(case_id="req:REQ-9"):
        logging.getLogger("services.deadlines").info("fired")
    line = capsys.readouterr().err.strip()
    assert " INFO deadlines services.deadlines: fired [case_id=req:REQ-9]" in line


def test_only_known_ids_can_be_bound() -> None:
    with pytest.raises(ValueError, match="email"), bind(email="a@b.c"):
        pass
