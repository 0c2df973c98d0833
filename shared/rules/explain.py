"""Human-readable, step-by-step explanation of one case, with its sources."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from shared.rules.calendar import DEFAULT_CALENDAR, add_months, parse_date, skipped_days
from shared.rules.evaluate import evaluate

SOURCES: dict[str, tuple[str, str]] = {
    "R-CAL-1": ("Time zone and strict parsing", "RULES.md R-CAL-1 (Europe/Paris, IANA tzdata)"),
    "R-CAL-2": ("Months and years", "Reg 1182/71 Art 3(1), 3(2)(c)"),
    "R-CAL-3": ("Working-day roll-over", "Reg 1182/71 Art 3(4); C. trav. L3133-1, L3134-13"),
    "R-CAL-4": ("Hour periods", "Reg 1182/71 Art 3(2)(a), 3(4)"),
    "R-DSR-1": ("Request due date", "GDPR Art 12(3); Reg 1182/71 Art 3; C. trav. L3133-1"),
    "R-DSR-1b": ("Content of an access answer", "GDPR Art 15"),
    "R-DSR-2": ("Extension by two further months", "GDPR Art 12(3); Reg 1182/71 Art 3"),
    "R-DSR-3": ("Pause awaiting the data subject", "EDPB Guidelines 01/2022 s.5.3; Art 12(6)"),
    "R-DSR-4": ("Access frequency screening", "GDPR Art 12(5); Recital 63"),
    "R-DSR-5": ("Fees", "GDPR Art 12(5), 15(3); EDPB 01/2022 para 192"),
    "R-DSR-6": ("Erasure decisions", "GDPR Art 17(1), 17(3), 12(4), 19; CNIL NS-048 art 5"),
    "R-DSR-7": ("Objection", "GDPR Art 21(1)-(3), 18(1)(d)"),
    "R-DSR-8": ("Restriction", "GDPR Art 18, 19"),
    "R-DSR-9": ("Portability", "GDPR Art 20"),
    "R-DSR-10": ("Notifying recipients", "GDPR Art 19"),
    "R-DSR-11": ("Rectification and automated decisions", "GDPR Art 16, 22"),
    "R-DSR-12": ("Digital death", "Loi 78-17 art 84-85; GDPR Art 12(3)"),
    "R-BR-1": ("72-hour breach notification", "GDPR Art 33(1); Reg 1182/71 Art 3(4)"),
    "R-BR-2": ("Awareness via a processor", "GDPR Art 33(2); EDPB 9/2022 s.II.A.4"),
    "R-BR-3": ("Late or phased notification", "GDPR Art 33(1), 33(4), 33(5)"),
    "R-BR-4": ("Risk gates", "GDPR Art 33(1), 33(5), 34(1), 34(3)"),
    "R-RET-1": ("Retention period", "GDPR Art 5(1)(e); CNIL NS-048 art 5; Reg 1182/71 Art 3"),
    "R-RET-2": ("Retention categories", "C. civ. 2224; C. com. L110-4, L123-22; C. conso L213-1"),
    "R-RET-3": ("Retention input validation", "RULES.md R-RET-3"),
    "R-RET-4": ("Legal hold", "GDPR Art 17(3)(e); seed policy"),
    "R-PROC-1": ("Processor end of contract", "GDPR Art 28(3)(g), 28(4); SCC 2021/915 cl. 10(d)"),
}


def _roll_steps(label: str, raw: str, final: str, calendar: str) -> list[str]:
    if raw == final:
        return [f"{label}: {raw} is a working day, no roll-over (Reg 1182/71 Art 3(4))"]
    skipped = ", ".join(
        f"{d.isoformat()} ({why})" for d, why in skipped_days(parse_date(raw), calendar)
    )
    return [f"{label}: {raw} is not a working day; skip {skipped} -> {final} (Art 3(4))"]


def _date_steps(inp: Mapping[str, Any], out: Mapping[str, Any]) -> list[str]:
    steps: list[str] = []
    calendar = str(inp.get("holiday_calendar") or DEFAULT_CALENDAR)
    if "receipt_date" in out:
        steps.append(f"receipt date (Europe/Paris calendar date, day 0): {out['receipt_date']}")
    if out.get("paused_days"):
        steps.append(f"pauses add {out['paused_days']} calendar days (R-DSR-3)")
    due = out.get("base_due_date", out.get("due_date"))
    if out.get("raw_due_date") and isinstance(due, str):
        plus = " + paused days" if out.get("paused_days") else ""
        steps.append(f"one month later, clamped to month end{plus}: {out['raw_due_date']}")
        steps += _roll_steps("due date", out["raw_due_date"], due, calendar)
    if out.get("extended_due_date") and "receipt_date" in out:
        plus3 = add_months(date.fromisoformat(out["receipt_date"]), 3)
        paused = int(out.get("paused_days") or 0)
        raw_ext = plus3 + timedelta(days=paused)
        steps.append(
            f"valid extension: receipt + 3 months = {plus3}, + {paused} paused = {raw_ext}"
        )
        steps += _roll_steps(
            "extended due date", raw_ext.isoformat(), out["extended_due_date"], calendar
        )
    if "deadline_utc" in out:
        steps.append(f"clock starts {out.get('clock_start_utc', '?')}; +72 elapsed hours in UTC")
        steps.append(
            f"deadline {out['deadline_utc']} = {out['deadline_local']} local; hours never roll"
        )
    if "start_date" in out:
        until = out.get("normal_retain_until", out.get("retain_until"))
        steps.append(
            f"start event date {out['start_date']}; + duration (clamped) -> keep through {until}"
        )
        steps.append(f"purge due the next day: {out.get('purge_due')} (no roll-over for retention)")
    return steps


def explain_case(case: Mapping[str, Any]) -> list[str]:
    """Explain one case as printable lines; raises RuleError on bad input."""
    rule, inp = str(case.get("rule")), case.get("input") or {}
    out = evaluate(rule, inp)
    title, sources = SOURCES.get(rule, (rule, "RULES.md"))
    lines = [f"Case {case.get('id', '-')}: {rule} {title}", f"Sources: {sources}", "Input:"]
    lines += [f"  {k} = {v}" for k, v in inp.items()]
    lines.append("Steps:")
    lines += [f"  {n}. {s}" for n, s in enumerate(_date_steps(inp, out), 1)] or ["  (decision)"]
    lines.append("Output:")
    lines += [f"  {k} = {v}" for k, v in out.items()]
    expected = case.get("expected")
    if isinstance(expected, Mapping):
        keep = {k: v for k, v in expected.items() if k not in ("ground", "reason")}
        same = all(out.get(k) == v for k, v in keep.items()) and set(keep) <= set(out)
        lines.append(f"Expected: {'matches' if same else 'DIFFERS'} (ground/reason ignored)")
    return lines
