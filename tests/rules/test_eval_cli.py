"""``python -m shared.rules eval`` as a subprocess: the published interface."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.rules.golden import GARDIEN_VECTORS, ROOT, VECTORS, case_input, load, without_prose

CASES = load(VECTORS) + load(GARDIEN_VECTORS)


def run(args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.rules", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_eval_all_vectors() -> None:
    assert VECTORS.is_file(), f"golden cases missing: {VECTORS}"
    assert GARDIEN_VECTORS.is_file(), f"golden cases missing: {GARDIEN_VECTORS}"
    cases = [case_input(c) for c in CASES]
    proc = run(["eval"], json.dumps(cases))
    assert proc.returncode == 0, proc.stderr
    outputs = json.loads(proc.stdout)
    assert [o["id"] for o in outputs] == [c["id"] for c in CASES]
    for out, case in zip(outputs, CASES, strict=True):
        assert without_prose(out["output"]) == without_prose(case["expected"]), case["id"]


def test_bad_cases_do_not_stop_the_others() -> None:
    cases: list[Any] = [
        42,
        {"id": "no-rule", "input": {}},
        {"id": "unknown", "rule": "R-NOPE-9", "input": {}},
        {"id": "not-object", "rule": "R-DSR-1", "input": "2027-03-05"},
        {"id": "missing", "rule": "R-DSR-1", "input": {"request_type": "access"}},
        {"id": "bad-date", "rule": "R-DSR-1", "input": {"received_date": "2026-02-29"}},
        {"id": "gap", "rule": "R-BR-1", "input": {"awareness_at": "2027-03-28T02:30:00"}},
        {
            "id": "cal",
            "rule": "R-DSR-1",
            "input": {"received_date": "2027-03-05", "holiday_calendar": "FR-corse"},
        },
        {"id": "ok", "rule": "R-DSR-1", "input": {"received_date": "2027-03-05"}},
    ]
    proc = run(["eval"], json.dumps(cases))
    assert proc.returncode == 0, proc.stderr
    outputs = [o["output"] for o in json.loads(proc.stdout)]
    assert outputs[:8] == [
        {"error": "INVALID_INPUT"},
        {"error": "UNKNOWN_RULE"},
        {"error": "UNKNOWN_RULE"},
        {"error": "INVALID_INPUT"},
        {"error": "MISSING_FIELD"},
        {"error": "INVALID_DATE"},
        {"error": "NONEXISTENT_LOCAL_TIME"},
        {"error": "UNKNOWN_CALENDAR"},
    ]
    assert outputs[8]["due_date"] == "2027-04-05"


def test_non_json_stdin_exits_2_with_one_line() -> None:
    proc = run(["eval"], "this is not json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1


def test_explain_prints_steps_and_sources(tmp_path: Path) -> None:
    case = tmp_path / "case.json"
    case.write_text(
        json.dumps({"id": "X", "rule": "R-DSR-1", "input": {"received_date": "2027-02-28"}})
    )
    proc = run(["explain", str(case)], "")
    assert proc.returncode == 0, proc.stderr
    assert "Easter Monday" in proc.stdout
    assert "GDPR Art 12(3)" in proc.stdout


def test_explain_bad_input_exits_2(tmp_path: Path) -> None:
    case = tmp_path / "case.json"
    case.write_text(json.dumps({"rule": "R-BR-1", "input": {"awareness_at": "2027-10-31T02:30"}}))
    proc = run(["explain", str(case)], "")
    assert proc.returncode == 2
    assert "AMBIGUOUS_LOCAL_TIME" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
