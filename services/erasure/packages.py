"""The access package's content (pure): what goes in, the manifest, portability's scope.

A package answers an access (GDPR Art 15) or portability (Art 20) request: per connected
system its records as JSON and CSV, and ``manifest.json``, which carries what Art 15(1)
requires, taken from the active policy profile and the registry: (a) purposes, (b)
categories, (c) recipients, (d) retention period or criteria, (e)-(f) the rights and how
to complain to the CNIL, (g) the source, (h) automated decision-making; Art 15(2)
transfers; and which systems answered, when, which did not and why.

For portability only data the subject provided, processed on consent or contract
(Art 20(1)(a)), are kept. A record's category is its ``category`` field when it has one,
else the system's only category; a record whose category is not portable is left out
(the manifest counts them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from services.erasure.registry import Registry, System
from shared.rules import Policy
from shared.rules.register import Activity

Status = Literal["answered", "not_found", "failed", "no_answer"]
Right = Literal["access", "portability"]
PORTABLE_BASIS = re.compile(r"consent|contract|6\(1\)\((a|b)\)", re.IGNORECASE)
CNIL = {
    "authority": "Commission nationale de l'informatique et des libertés (CNIL)",
    "address": "3 place de Fontenoy, TSA 80715, 75334 Paris Cedex 07, France",
    "online": "https://www.cnil.fr/fr/adresser-une-plainte",
}
FORMAT = "gardien-access-package/1"


@dataclass(frozen=True)
class SystemAnswer:
    """What one connected system answered to the export command."""

    system: str
    status: Status
    at: datetime | None
    reason: str | None
    blob_id: str | None
    content_type: str | None
    categories: list[str]
    provided_by_subject: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PackageOrder:
    """Everything a package is built from (the collection case, once closed)."""

    request_id: str
    right: Right
    kid: str
    answers: list[SystemAnswer]
    received_at: datetime
    subject: str | None = None  # keyed pseudonym of the subject (Art 15(3) further copies)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoryEntry(_Model):
    """One category a system holds, with its Art 15(1) particulars."""

    category: str
    activity: str | None
    purposes: list[str]
    legal_bases: list[str]
    recipients: list[str]
    retention: list[str]
    source: str
    transfers: list[dict[str, str]]
    portable: bool


class SystemEntry(_Model):
    """One system: how it answered and what of it is in the package."""

    system: str
    description: str
    status: Status
    answered_at: str | None
    reason: str | None
    records: int
    left_out: int
    files: list[str]
    categories: list[CategoryEntry]


class Manifest(_Model):
    """``manifest.json``."""

    format: str
    request_id: str
    right: Right
    received_at: str
    built_at: str
    policy: str
    controller: dict[str, Any]
    systems: list[SystemEntry]
    rights: list[str]
    complaint: dict[str, str]
    automated_decision_making: str
    notes: list[str]


@dataclass
class Outcome:
    """What the builder found in one system's upload."""

    status: Status
    reason: str | None
    records: int = 0
    left_out: int = 0
    files: list[str] = field(default_factory=list)


def system_files(system: str) -> tuple[str, str]:
    """The package paths of a system's JSON and CSV records."""
    return f"{system}/records.json", f"{system}/records.csv"


def _activity(policy: Policy, system: System | None, category: str) -> Activity | None:
    link = system.categories.get(category) if system else None
    wanted = link.activity if link else None
    return next((a for a in policy.records.activities if a.id == wanted), None)


def is_portable(activity: Activity | None, category: str, answer: SystemAnswer) -> bool:
    """Art 20(1): provided by the subject and processed on consent or contract."""
    bases = activity.legal_bases if activity else ()
    provided = category in answer.provided_by_subject
    return provided and any(PORTABLE_BASIS.search(b) for b in bases)


def portable_categories(policy: Policy, registry: Registry, answer: SystemAnswer) -> set[str]:
    """The categories of ``answer`` that a portability package keeps."""
    system = registry.get(answer.system)
    return {c for c in answer.categories if is_portable(_activity(policy, system, c), c, answer)}


def record_category(record: dict[str, Any], answer: SystemAnswer) -> str | None:
    """The category a record belongs to: its ``category`` field, or the system's only one."""
    named = record.get("category")
    if isinstance(named, str):
        return named
    return answer.categories[0] if len(answer.categories) == 1 else None


def _retention(
    policy: Policy, system: System | None, category: str, act: Activity | None
) -> list[str]:
    link = system.categories.get(category) if system else None
    if link and link.retention:
        r = link.retention
        return [f"{r.years} years from {r.start.replace('_', ' ')} ({r.ground})"]
    lines = [
        f"{e.duration_months} months from {e.start_event.replace('_', ' ')} ({e.basis})"
        for e in policy.retention.values()
        if act is not None and e.activity == act.id
    ]
    if not lines and act is not None and act.retention_note:
        lines = [act.retention_note]
    return lines or ["as set out in the controller's register"]


def category_entry(
    policy: Policy, system: System | None, category: str, answer: SystemAnswer
) -> CategoryEntry:
    """The Art 15(1) particulars of one category of one system."""
    act = _activity(policy, system, category)
    recipients = list(act.recipients) if act else []
    if system and (system.recipient or system.processor):
        recipients.append(f"{system.id} ({'processor' if system.processor else 'recipient'})")
    provided = category in answer.provided_by_subject
    source = "provided by you" if provided else f"recorded by {answer.system}"
    return CategoryEntry(
        category=category,
        activity=act.id if act else None,
        purposes=list(act.purposes) if act else [],
        legal_bases=list(act.legal_bases) if act else [],
        recipients=recipients,
        retention=_retention(policy, system, category, act),
        source=source + (f" ({act.name})" if act else ""),
        transfers=[t.model_dump(exclude_none=True) for t in act.transfers] if act else [],
        portable=is_portable(act, category, answer),
    )


def manifest(
    order: PackageOrder,
    policy: Policy,
    registry: Registry,
    outcomes: dict[str, Outcome],
    built_at: datetime,
) -> Manifest:
    """The manifest of the package built from ``order`` with these per-system outcomes."""
    systems = []
    for answer in order.answers:
        system, done = registry.get(answer.system), outcomes[answer.system]
        systems.append(
            SystemEntry(
                system=answer.system,
                description=system.description if system else "",
                status=done.status,
                answered_at=answer.at.isoformat() if answer.at else None,
                reason=done.reason,
                records=done.records,
                left_out=done.left_out,
                files=done.files,
                categories=[category_entry(policy, system, c, answer) for c in answer.categories],
            )
        )
    return Manifest(
        format=FORMAT,
        request_id=order.request_id,
        right=order.right,
        received_at=order.received_at.isoformat(),
        built_at=built_at.isoformat(),
        policy=policy.name,
        controller=policy.records.controller.model_dump(mode="json", exclude_none=True),
        systems=systems,
        rights=list(policy.rights.rights),
        complaint=CNIL,
        automated_decision_making="none declared in the controller's register",
        notes=_notes(order.right),
    )


def _notes(right: Right) -> list[str]:
    notes = [
        "Each system's records are in <system>/records.json and, flattened with dotted"
        " column names, in <system>/records.csv (UTF-8).",
    ]
    if right == "portability":
        notes.append(
            "Portability (GDPR Art 20): only data you provided, processed on your consent"
            " or for a contract, are included; left_out counts the records that were not."
        )
    return notes


def outcome_before_parsing(answer: SystemAnswer) -> Outcome | None:
    """The outcome of a system with nothing to parse, or None when its upload is read."""
    if answer.status == "answered" and answer.blob_id is None:
        return Outcome("answered", None)
    if answer.status != "answered":
        return Outcome(answer.status, answer.reason)
    return None
