"""Legal holds in erasure, the last gate before data are destroyed (Art 17(3)(e), R-RET-4).

Pure: which command lines an active hold covers, how a case keeps them back and how a
release frees them. A held line is a ``Progress`` of its own in state ``held`` (never sent,
nothing due); the other lines of the same system are commanded as usual. A release frees
every held line no other active hold covers and merges them, per system, into one pending
command that the next ``advance`` issues.

Case keys and command ids: a system's first command keeps the key ``<system>`` and the id
``<case_id>:<system>``; a later one (a part freed after the system was commanded) has the
key ``<system>/h<n>`` and the id ``<case_id>/h<n>:<system>`` so that a connected system,
which answers a repeated command id with its first answer, sees a new command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.erasure.domain import Case, Effect, Progress, advance
from services.erasure.registry import Registry

PART = re.compile(r"(?P<case>.+)/h(?P<n>[0-9]+)")


@dataclass(frozen=True)
class Hold:
    """An active legal hold: its matter and scope (subject references, categories)."""

    hold_id: str
    matter: str
    subject_refs: frozenset[str]
    categories: frozenset[str]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Hold:
        return cls(
            str(doc["_id"]),
            str(doc["matter"]),
            frozenset(doc.get("subject_refs") or ()),
            frozenset(doc.get("categories") or ()),
        )

    def covers(self, refs: Iterable[str], category: str, registry: Registry) -> bool:
        """True when the scope names the subject (or no subject) and the category (or none).

        A scope category is a decision category (``accounting``) or a system one
        (``invoices``); it covers what the registry's aliases expand it to.
        """
        if self.subject_refs and not self.subject_refs & set(refs):
            return False
        if not self.categories:
            return True
        return any(category == c or category in registry.expand(c) for c in self.categories)

    def ref(self) -> dict[str, str]:
        return {"hold_id": self.hold_id, "matter": self.matter}


def command_id(case_id: str, key: str, system: str) -> str:
    """The command id of the case part stored under ``key``."""
    part = key.removeprefix(system)
    return f"{case_id}{part}:{system}" if part else f"{case_id}:{system}"


def locate(command_id: str, system: str) -> tuple[str, str]:
    """(case id, case key) of a command id sent to ``system``."""
    base = command_id.removesuffix(f":{system}")
    match = PART.fullmatch(base)
    if match is None:
        return base, system
    return match["case"], f"{system}/h{match['n']}"


def _free_key(case: Case, system: str) -> str:
    if system not in case.systems:
        return system
    n = 1
    while f"{system}/h{n}" in case.systems:
        n += 1
    return f"{system}/h{n}"


def withhold(case: Case, holds: list[Hold], refs: list[str], registry: Registry) -> list[str]:
    """Keep back the lines of unsent commands that ``holds`` cover; the keys now held."""
    held: list[str] = []
    for key, progress in list(case.systems.items()):
        if progress.state != "pending" or progress.attempts:
            continue
        parts = [(line, [h for h in holds if h.covers(refs, line.category, registry)])
                 for line in progress.lines]  # fmt: skip
        covered = [(line, by) for line, by in parts if by]
        if not covered:
            continue
        free = [line for line, by in parts if not by]
        del case.systems[key]
        if free:
            case.systems[key] = _with_lines(progress, free, key, case.case_id)
        for line, by in covered:
            part = _free_key(case, progress.system)
            case.systems[part] = _with_lines(progress, [line], part, case.case_id).model_copy(
                update={"state": "held", "next_attempt_at": None, "held_by": [h.ref() for h in by]}
            )
            held.append(part)
    case.holds_pending = pending_holds(case)
    return held


def extend(case: Case, hold: Hold, registry: Registry) -> list[str]:
    """Add a newly placed hold to the held lines it covers; the keys it now holds too."""
    touched = []
    for key, progress in case.systems.items():
        if progress.state != "held" or any(h["hold_id"] == hold.hold_id for h in progress.held_by):
            continue
        if hold.covers(case.subject_refs, progress.lines[0].category, registry):
            progress.held_by = [*progress.held_by, hold.ref()]
            touched.append(key)
    case.holds_pending = pending_holds(case)
    return touched


def release(case: Case, hold_id: str, now: datetime) -> list[str]:
    """Drop a released hold; lines nothing else holds become one pending command per system."""
    freed: dict[str, list[str]] = {}
    for key, progress in case.systems.items():
        if progress.state != "held" or all(h["hold_id"] != hold_id for h in progress.held_by):
            continue
        progress.held_by = [h for h in progress.held_by if h["hold_id"] != hold_id]
        if not progress.held_by:
            freed.setdefault(progress.system, []).append(key)
    keys = []
    for system, parts in freed.items():
        first, *rest = sorted(parts, key=lambda k: (k != system, k))
        merged = case.systems[first]
        lines = [line for k in [first, *rest] for line in case.systems[k].lines]
        for k in rest:
            del case.systems[k]
        case.systems[first] = _with_lines(merged, lines, first, case.case_id).model_copy(
            update={"state": "pending", "next_attempt_at": now, "held_by": []}
        )
        keys.append(first)
    case.holds_pending = pending_holds(case)
    return keys


def pending_holds(case: Case) -> list[str]:
    """Ids of the holds that keep some part of the case back."""
    return sorted({h["hold_id"] for p in case.systems.values() for h in p.held_by})


def _with_lines(progress: Progress, lines: list[Any], key: str, case_id: str) -> Progress:
    actions = {line.action for line in lines}
    return progress.model_copy(
        update={
            "lines": lines,
            "action": actions.pop() if len(actions) == 1 else "mixed",
            "command_id": command_id(case_id, key, progress.system),
        }
    )


def placed(case: Case, hold: Hold, registry: Registry) -> list[Effect] | None:
    """A hold placed after the case opened; None when it holds none of the case's parts."""
    if not extend(case, hold, registry):
        return None
    return [Effect("held", extra=hold.ref())]


def released(case: Case, hold_id: str, matter: str, now: datetime) -> list[Effect] | None:
    """A hold released: free what nothing else holds and issue it; None if not held here."""
    if hold_id not in case.holds_pending:
        return None
    reissued = release(case, hold_id, now)
    told = {"hold_id": hold_id, "matter": matter, "reissued": reissued}
    return [Effect("released", extra=told), *advance(case, now)]
