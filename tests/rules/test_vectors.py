"""Every golden case of /work/shared/rules/vectors.json through the evaluation interface."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.rules.evaluate import evaluate_case

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "rules" / "vectors.json"
PROSE = ("ground", "reason")


def _cases() -> list[Any]:
    if not VECTORS.is_file():
        return []
    cases: list[Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return cases


def without_prose(value: Any) -> Any:
    """Drop the prose keys at every depth: they are ignored by the comparison."""
    if isinstance(value, dict):
        return {k: without_prose(v) for k, v in value.items() if k not in PROSE}
    if isinstance(value, list):
        return [without_prose(v) for v in value]
    return value


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_vector(case: dict[str, Any]) -> None:
    result = evaluate_case({k: case[k] for k in ("id", "rule", "input")})
    assert result["id"] == case["id"]
    assert without_prose(result["output"]) == without_prose(case["expected"])


def test_vectors_present() -> None:
    if not CASES:
        pytest.skip(f"golden vectors not found at {VECTORS}")
    assert len(CASES) >= 60
