"""Pure shaping of audit records: references, subject refs, personal-data removal."""

from __future__ import annotations

import hashlib
import hmac
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


def normalise_identifier(value: str) -> str:
    """The form identifiers are hashed in: trimmed and case-folded."""
    return value.strip().casefold()


def subject_ref(key: bytes, identifier: str) -> str:
    """Keyed hash (HMAC-SHA256) of one identifier: findable, not reversible."""
    return hmac.new(key, normalise_identifier(identifier).encode(), hashlib.sha256).hexdigest()


def identifiers_in(data: dict[str, Any]) -> list[str]:
    """Every identifier value of every subject an event's data names."""
    found: list[str] = []
    subjects = [data.get("subject")]
    scope = data.get("scope")
    if isinstance(scope, dict):
        subjects += list(scope.get("subjects") or [])
    if isinstance(data.get("identifiers"), dict):
        subjects.append({"identifiers": data["identifiers"]})
    for subject in subjects:
        if isinstance(subject, dict) and isinstance(subject.get("identifiers"), dict):
            found += [str(v) for v in subject["identifiers"].values() if v not in (None, "")]
    return found


def without_identifiers(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of event data with every subject's identifiers removed."""
    clean = dict(data)
    if isinstance(clean.get("subject"), dict):
        clean["subject"] = {k: v for k, v in clean["subject"].items() if k != "identifiers"}
    if isinstance(clean.get("scope"), dict) and clean["scope"].get("subjects"):
        clean["scope"] = {
            **clean["scope"],
            "subjects": [
                {k: v for k, v in s.items() if k != "identifiers"}
                for s in clean["scope"]["subjects"]
                if isinstance(s, dict)
            ],
        }
    clean.pop("identifiers", None)
    return clean


def references(data: dict[str, Any]) -> dict[str, str]:
    """The aggregate ids an event refers to, for indexed queries."""
    return {f: str(data[f]) for f in REF_FIELDS if isinstance(data.get(f), str | int)}
