"""The register of processing activities (GDPR Art 30(1)) held in the policy profile.

A profile's ``register`` names the controller (Art 30(1)(a)) and lists its processing
activities, each with the fields of Art 30(1)(b)-(g). Retention categories and connected
system categories point at an activity by its id; ``register_document`` joins the three
into the record the API serves, and ``document_hash`` gives it a canonical fingerprint so
a change can be detected and audited. Pure: nothing here reads a file or a clock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ActivityId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Text = Annotated[str, Field(min_length=1, max_length=2000)]
Items = Annotated[tuple[Text, ...], Field(min_length=1)]
CONTROLLER_PART = "_controller"
Safeguard = Literal[
    "adequacy_decision",  # Art 45
    "standard_contractual_clauses",  # Art 46(2)(c)
    "binding_corporate_rules",  # Art 47
    "art_49_derogation",  # Art 49(1): documentation required (Art 30(1)(e))
    "other_art_46_safeguard",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Model):
    """A person or office and how to reach it (an office address, not a private one)."""

    name: Text
    role: Text | None = None
    address: Text | None = None
    email: Text | None = None
    phone: Text | None = None


class Controller(_Model):
    """Art 30(1)(a): the controller, its EU representative and its DPO, if any."""

    organisation: Text
    contact: Contact
    representative: Contact | None = None
    dpo: Contact | None = None
    dpo_note: Text | None = None  # e.g. why no DPO is designated (Art 37)
    assumptions: tuple[Text, ...] = ()

    @model_validator(mode="after")
    def _reachable(self) -> Controller:
        c = self.contact
        if not (c.email or c.phone or c.address):
            raise ValueError("the controller's contact needs an email, phone or address")
        return self


class Transfer(_Model):
    """Art 30(1)(e): one transfer outside the EU/EEA, its country and its safeguard."""

    recipient: Text
    country: Text
    safeguard: Safeguard
    documentation: Text | None = None

    @model_validator(mode="after")
    def _documented(self) -> Transfer:
        if self.safeguard == "art_49_derogation" and not self.documentation:
            raise ValueError("an Art 49(1) transfer needs its safeguards documented")
        return self


class Activity(_Model):
    """One processing activity: the CNIL model's record sheet, Art 30(1)(b)-(g)."""

    id: ActivityId
    name: Text
    created: date | None = None
    updated: date | None = None
    joint_controllers: tuple[Text, ...] = ()
    purposes: Items
    legal_bases: Items
    data_subjects: Items
    data_categories: Items
    sensitive_data: tuple[Text, ...] = ()
    recipients: Items
    transfers: tuple[Transfer, ...] = ()
    retention_note: Text | None = None
    security_measures: Items
    assumptions: tuple[Text, ...] = ()  # what the register assumes beyond the policy text


class Register(_Model):
    """The controller and its activities; ids are unique."""

    controller: Controller
    activities: Annotated[tuple[Activity, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> Register:
        ids = [a.id for a in self.activities]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate register activity ids: {', '.join(dupes)}")
        return self

    def ids(self) -> list[str]:
        """The activity ids, in register order."""
        return [a.id for a in self.activities]


def pointer_error(owner: str, activity: str | None, register: Register) -> str | None:
    """Why ``owner`` does not point at a register entry, or None when it does."""
    known = ", ".join(sorted(register.ids()))
    if not activity:
        return f"{owner} has no register entry: set activity to one of: {known}"
    if activity not in register.ids():
        return f"{owner} points at unknown register activity {activity!r} (known: {known})"
    return None


class RetentionLine(_Model):
    """Art 30(1)(f): one retention category of the activity, from the schedule."""

    category: str
    start_event: str
    duration_months: int
    basis: str
    action: str
    statutory: bool


class SystemLink(_Model):
    """A connected system holding categories of the activity (recipients, processors)."""

    system: str
    description: str = ""
    categories: tuple[str, ...]
    processor: bool = False
    recipient: bool = False


class ActivityRecord(Activity):
    """An activity with its retention lines and the connected systems pointing at it."""

    retention: tuple[RetentionLine, ...] = ()
    systems: tuple[SystemLink, ...] = ()


class RegisterDocument(_Model):
    """The register as served: controller, activities, and the canonical hash."""

    policy: str
    controller: Controller
    activities: tuple[ActivityRecord, ...]
    hash: str = ""


def register_document(
    policy_name: str,
    register: Register,
    retention: Iterable[tuple[str, str, RetentionLine]],
    systems: Mapping[str, Iterable[SystemLink]],
) -> RegisterDocument:
    """Join the register with (category, activity, line) retention triples and system links."""
    lines: dict[str, list[RetentionLine]] = {}
    for _, activity, line in sorted(retention, key=lambda t: t[0]):
        lines.setdefault(activity, []).append(line)
    records = tuple(
        ActivityRecord(
            **a.model_dump(),
            retention=tuple(lines.get(a.id, ())),
            systems=tuple(sorted(systems.get(a.id, ()), key=lambda s: s.system)),
        )
        for a in register.activities
    )
    doc = RegisterDocument(policy=policy_name, controller=register.controller, activities=records)
    return doc.model_copy(update={"hash": document_hash(doc)})


def _canonical(value: object) -> str:
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


def document_hash(doc: RegisterDocument) -> str:
    """SHA-256 of the document's canonical JSON (sorted keys, no whitespace), hash excluded."""
    return _canonical(doc.model_dump(mode="json", exclude={"hash"}))


def part_hashes(doc: RegisterDocument) -> dict[str, str]:
    """One hash per activity id, plus ``_controller`` (never an activity id) for the rest."""
    parts = {a.id: _canonical(a.model_dump(mode="json")) for a in doc.activities}
    head = {"policy": doc.policy, "controller": doc.controller.model_dump(mode="json")}
    return {**parts, CONTROLLER_PART: _canonical(head)}


def register_changes(old: Mapping[str, str], new: Mapping[str, str]) -> dict[str, list[str]]:
    """Activity ids added, removed and changed between two ``part_hashes`` results."""
    return {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(k for k in set(old) & set(new) if old[k] != new[k]),
    }
