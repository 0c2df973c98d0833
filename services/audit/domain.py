"""Pure shaping of audit records: references, subject refs, personal-data separation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REF_FIELDS = (
    "request_id",
    "breach_id",
    "case_id",
    "command_id",
    "contract_id",
    "matter",
    "old_processor",
    "processor",
    "system",
    "timer_id",
)
# Free-text fields that may describe a person; sealed with the subject's key.
PERSONAL_FIELDS = ("details", "note", "detail", "reasons", "reasons_for_delay")
# Aggregates whose events can be linked to a subject key (most specific first).
LINKABLE = ("request_id", "case_id", "command_id", "contract_id")
# The aggregates that begin a relationship with a subject: only a request or contract first
# seen after the subject's key was destroyed earns the key a new generation.
RELATIONSHIPS = ("request_id", "contract_id")


@dataclass(frozen=True)
class Part:
    """One personal part of an event's data: where it sits and whose it is."""

    path: str  # dotted path inside ``data``
    value: Any
    subject: int | None  # index into ``subjects_in(data)``; None = the event's main subject


def _subject_slots(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(path of the identifiers, identifiers) of every subject the data names."""
    slots: list[tuple[str, dict[str, Any]]] = []
    subject = data.get("subject")
    if isinstance(subject, dict) and isinstance(subject.get("identifiers"), dict):
        slots.append(("subject.identifiers", subject["identifiers"]))
    scope = data.get("scope")
    if isinstance(scope, dict) and isinstance(scope.get("subjects"), list):
        for i, s in enumerate(scope["subjects"]):
            if isinstance(s, dict) and isinstance(s.get("identifiers"), dict):
                slots.append((f"scope.subjects.{i}.identifiers", s["identifiers"]))
    if isinstance(data.get("identifiers"), dict):
        slots.append(("identifiers", data["identifiers"]))
    return slots


def subjects_in(data: dict[str, Any]) -> list[list[str]]:
    """The identifier values of each subject the data names (empty values skipped)."""
    return [
        [str(v) for v in ids.values() if v not in (None, "")] for _, ids in _subject_slots(data)
    ]


def identifiers_in(data: dict[str, Any]) -> list[str]:
    """Every identifier value of every subject an event's data names."""
    return [value for subject in subjects_in(data) for value in subject]


def _named(ids: dict[str, Any]) -> bool:
    """Whether an identifiers object holds at least one identifier (``{}`` names nobody)."""
    return any(v not in (None, "") for v in ids.values())


def personal_parts(data: dict[str, Any]) -> list[Part]:
    """The parts of ``data`` to seal: identifiers per subject, then free-text fields.

    An identifiers object naming nobody (a processor's ``delete_all`` order carries
    ``identifiers: {}``) is not personal: it stays in ``data`` in clear.
    """
    slots = enumerate(_subject_slots(data))
    parts = [Part(path, ids, i) for i, (path, ids) in slots if _named(ids)]
    parts += [Part(f, data[f], None) for f in PERSONAL_FIELDS if data.get(f) not in (None, "")]
    return parts


def without_personal(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of event data with identifiers and personal free-text fields removed."""
    clean = _without_ids({k: v for k, v in data.items() if k not in PERSONAL_FIELDS})
    if isinstance(clean.get("subject"), dict):
        clean["subject"] = _without_ids(clean["subject"])
    if isinstance(clean.get("scope"), dict) and isinstance(clean["scope"].get("subjects"), list):
        clean["scope"] = {
            **clean["scope"],
            "subjects": [
                _without_ids(s) if isinstance(s, dict) else {} for s in clean["scope"]["subjects"]
            ],
        }
    return clean


def _without_ids(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` without its ``identifiers`` (kept when they name nobody, see _named)."""
    ids = node.get("identifiers")
    if isinstance(ids, dict) and not _named(ids):
        return dict(node)
    return {k: v for k, v in node.items() if k != "identifiers"}


# Kept for callers of the first version.
without_identifiers = without_personal


def put(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at a dotted ``path`` of ``data`` (list indexes are numbers)."""
    *parents, last = path.split(".")
    node: Any = data
    for step in parents:
        node = node[int(step)] if isinstance(node, list) else node.setdefault(step, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def subject_key_id(refs: list[str]) -> str:
    """The key id of a subject known by ``refs``: its smallest ref (stable across events)."""
    return min(refs)


def generation_for(
    state: tuple[int, bool] | None, bound: list[int], known: bool, opens: bool
) -> int:
    """The generation of a key a record's personal parts are sealed under.

    ``state``: (current generation, live) of the key, None before its first use; ``bound``:
    the generations the record's already-linked aggregates belong to under this key;
    ``known``: whether any of its aggregates was linked before; ``opens``: whether it names
    a request or contract. A record about an existing aggregate belongs to that aggregate's
    generation (destroyed or not); a new generation follows a destroyed one only for a
    request or contract never seen before. Any other record gets the current generation,
    which may be destroyed: its personal parts are then not kept.
    """
    if bound:
        return min(bound)
    if state is None:
        return 1
    gen, live = state
    return gen + 1 if not live and opens and not known else gen


def references(data: dict[str, Any]) -> dict[str, str]:
    """The aggregate ids an event refers to (``ref`` of deadline events included)."""
    found = {f: str(data[f]) for f in REF_FIELDS if isinstance(data.get(f), str | int)}
    nested = data.get("ref")
    if isinstance(nested, dict):
        for f in REF_FIELDS:
            if f not in found and isinstance(nested.get(f), str | int):
                found[f] = str(nested[f])
    command = found.get("command_id", "")
    if "case_id" not in found and ":" in command:
        found["case_id"] = command.rsplit(":", 1)[0]  # command ids are <case_id>:<system>
    return found
