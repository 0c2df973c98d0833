"""Every golden case (reference copy and Gardien's own) through the evaluation interface."""

from __future__ import annotations

from typing import Any

import pytest

from shared.rules.evaluate import evaluate_case
from tests.rules.golden import (
    GARDIEN_VECTORS,
    REFERENCE_COUNT,
    UPSTREAM,
    VECTORS,
    case_input,
    load,
    without_prose,
)

CASES = load(VECTORS)
OWN = load(GARDIEN_VECTORS)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_vector(case: dict[str, Any]) -> None:
    result = evaluate_case(case_input(case))
    assert result["id"] == case["id"]
    assert without_prose(result["output"]) == without_prose(case["expected"])


@pytest.mark.parametrize("case", OWN, ids=[c["id"] for c in OWN])
def test_gardien_vector(case: dict[str, Any]) -> None:
    result = evaluate_case(case_input(case))
    assert result["id"] == case["id"]
    assert without_prose(result["output"]) == without_prose(case["expected"])


def test_vectors_present() -> None:
    assert VECTORS.is_file(), f"the project copy of the golden cases is missing: {VECTORS}"
    assert len(CASES) == REFERENCE_COUNT


def test_gardien_vectors_present() -> None:
    assert GARDIEN_VECTORS.is_file(), f"Gardien's own golden cases are missing: {GARDIEN_VECTORS}"
    assert OWN, "no Gardien golden case"


def test_ids_unique_across_both_files() -> None:
    ids = [c["id"] for c in CASES + OWN]
    assert len(ids) == len(set(ids))


def test_copy_equals_upstream() -> None:
    if not UPSTREAM.is_file():
        pytest.skip(f"no upstream reference next to the project ({UPSTREAM})")
    assert VECTORS.read_bytes() == UPSTREAM.read_bytes(), (
        f"{VECTORS} differs from {UPSTREAM}: copy the reference again"
    )
