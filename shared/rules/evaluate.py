"""Evaluation interface: one case {id, rule, input} -> {id, output}, never raising."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from shared.rules import _eval_records as rec
from shared.rules import _eval_requests as req
from shared.rules import _eval_rights as rights
from shared.rules.errors import RuleError

Handler = Callable[[Mapping[str, Any]], dict[str, Any]]

RULES: dict[str, Handler] = {
    "R-CAL-1": rec.calendar_rule,
    "R-CAL-2": rec.months_rule,
    "R-CAL-3": rec.rollover_rule,
    "R-CAL-4": rec.hours_rule,
    "R-DSR-1": req.dsr_due,
    "R-DSR-1b": req.dsr_access_content,
    "R-DSR-2": req.dsr_extension,
    "R-DSR-3": req.dsr_due,
    "R-DSR-4": req.dsr_frequency,
    "R-DSR-5": req.dsr_fee,
    "R-DSR-6": rights.dsr_erasure,
    "R-DSR-7": rights.dsr_objection,
    "R-DSR-8": rights.dsr_restriction,
    "R-DSR-9": rights.dsr_portability,
    "R-DSR-10": rights.dsr_art19,
    "R-DSR-11": rights.dsr_rectification,
    "R-DSR-12": rights.dsr_postmortem,
    "R-BR-1": rec.breach_clock,
    "R-BR-2": rec.breach_clock,
    "R-BR-3": rec.breach_clock,
    "R-BR-4": rec.breach_risk,
    "R-RET-1": rec.retention,
    "R-RET-2": rec.retention,
    "R-RET-3": rec.retention,
    "R-RET-4": lambda inp: rec.retention(inp, holds_shape=True),
    "R-PROC-1": rec.processor,
}


def to_json(value: Any) -> Any:
    """Render dates as ISO strings, recursively."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def evaluate(rule: str, inp: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate one rule on one input; raise RuleError on bad input."""
    handler = RULES.get(rule)
    if handler is None:
        raise RuleError("UNKNOWN_RULE", f"unknown rule {rule!r}")
    if not isinstance(inp, Mapping):
        raise RuleError("INVALID_INPUT", "input must be an object")
    result: dict[str, Any] = to_json(handler(inp))
    return result


def evaluate_case(case: Any) -> dict[str, Any]:
    """Evaluate a case object; any failure becomes ``{"error": CODE}``."""
    if not isinstance(case, Mapping):
        return {"id": None, "output": {"error": "INVALID_INPUT"}}
    try:
        rule = case.get("rule")
        if not isinstance(rule, str):
            raise RuleError("UNKNOWN_RULE", "the case names no rule")
        inp = case.get("input")
        if not isinstance(inp, Mapping):
            raise RuleError("INVALID_INPUT", "input must be an object")
        output = evaluate(rule, inp)
    except RuleError as exc:
        output = {"error": exc.code}
    except Exception:  # a malformed input must not stop the other cases
        output = {"error": "INVALID_INPUT"}
    return {"id": case.get("id"), "output": output}


def evaluate_cases(cases: list[Any]) -> list[dict[str, Any]]:
    """Evaluate cases in order; one bad case never stops the others."""
    return [evaluate_case(case) for case in cases]
