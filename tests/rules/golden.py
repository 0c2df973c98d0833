"""Golden cases kept in the project (data, not code) and how outputs are compared.

``vectors.json`` is a copy of the reference cases (``../shared/rules/vectors.json``);
``gardien_vectors.json`` holds the project's own cases, in the same format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VECTORS = HERE / "vectors.json"
GARDIEN_VECTORS = HERE / "gardien_vectors.json"
UPSTREAM = ROOT.parent / "shared" / "rules" / "vectors.json"
PROSE = ("ground", "reason")
REFERENCE_COUNT = 67


def load(path: Path) -> list[Any]:
    """The cases of ``path``; an empty list when the file is missing (a test then fails)."""
    if not path.is_file():
        return []
    cases: list[Any] = json.loads(path.read_text(encoding="utf-8"))
    return cases


def without_prose(value: Any) -> Any:
    """Drop the prose keys at every depth: they are ignored by the comparison."""
    if isinstance(value, dict):
        return {k: without_prose(v) for k, v in value.items() if k not in PROSE}
    if isinstance(value, list):
        return [without_prose(v) for v in value]
    return value


def case_input(case: dict[str, Any]) -> dict[str, Any]:
    """The part of a golden case the evaluation interface reads."""
    return {k: case[k] for k in ("id", "rule", "input")}
