"""Controller policy profiles (YAML): retention schedule, rights, breaches, contractual values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.rules.errors import RuleError
from shared.rules.register import (
    Register,
    RegisterDocument,
    RetentionLine,
    SystemLink,
    pointer_error,
    register_document,
)
from shared.rules.register_default import DEFAULT_ACTIVITY, default_register
from shared.rules.retention import DEFAULT_SCHEDULE, RetentionRule

_DAYS = re.compile(r"^P(\d+)D$")
_HOURS = re.compile(r"^(?:PT(\d+)H|(\d+)h)$")
Action = Literal["delete", "anonymise", "delete_or_anonymise"]


class PolicyError(RuleError):
    """A policy profile that cannot be loaded or does not validate."""

    def __init__(self, message: str) -> None:
        super().__init__("INVALID_POLICY", message)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetentionEntry(_Model):
    """One category: start event, duration in months, legal basis, expiry action."""

    start_event: str
    duration_months: int = Field(ge=0, le=1200)
    basis: str
    action: Action = "delete_or_anonymise"
    statutory: bool = False
    note: str | None = None
    activity: str | None = None  # the register activity this category belongs to (Art 30)


class RightsPolicy(_Model):
    """How the controller handles data-subject requests."""

    rights: tuple[str, ...] = (
        "access",
        "rectification",
        "erasure",
        "restriction",
        "portability",
        "objection",
    )
    access_max_per_12_months: int = Field(default=4, ge=1)
    extension_total_months: Literal[3] = 3
    extension_note: str | None = None
    erasure_only_after_contract_end: bool = True
    objection_to_prospecting: bool = True
    request_reminders: tuple[str, ...] = ("P7D", "P1D")

    @field_validator("request_reminders")
    @classmethod
    def _days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not _DAYS.match(v)]
        if bad:
            raise ValueError(f"request reminders must look like P7D: {bad}")
        return value

    def reminder_days(self) -> list[int]:
        """Request reminder offsets in days before the due date."""
        return [int(_DAYS.match(v).group(1)) for v in self.request_reminders]  # type: ignore[union-attr]


class BreachPolicy(_Model):
    """Breach notification settings; 72 h is the law (GDPR Art 33(1)), not a choice."""

    notification_hours: Literal[72] = 72
    reminders: tuple[str, ...] = ("48h", "24h", "6h")

    @field_validator("reminders")
    @classmethod
    def _hours(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not _HOURS.match(v)]
        if bad:
            raise ValueError(f"breach reminders must look like 48h or PT48H: {bad}")
        return value

    def reminder_hours(self) -> list[int]:
        """Breach reminder offsets in hours before the deadline."""
        return [int(next(g for g in _HOURS.match(v).groups() if g)) for v in self.reminders]  # type: ignore[union-attr]


class ContractualValues(_Model):
    """Values GDPR leaves to contracts (DPA, Art 28)."""

    processor_breach_sla_hours: float = Field(default=24, gt=0)
    processor_deletion_days: int = Field(default=30, ge=0)
    processor_end_choice: Literal["delete", "return"] = "delete"


class Policy(_Model):
    """A controller's policy profile."""

    name: str
    holiday_calendar: Literal["FR-metropole", "FR-alsace-moselle"] = "FR-metropole"
    timezone: Literal["Europe/Paris"] = "Europe/Paris"
    max_retention_months: int | None = Field(default=None, ge=0)
    retention: dict[str, RetentionEntry] = Field(min_length=1)
    rights: RightsPolicy = RightsPolicy()
    breach: BreachPolicy = BreachPolicy()
    contractual: ContractualValues = ContractualValues()
    # "register" in YAML; the attribute is renamed because BaseModel's metaclass owns it.
    records: Register = Field(alias="register")

    @model_validator(mode="after")
    def _cap(self) -> Policy:
        cap = self.max_retention_months
        over = [
            k
            for k, e in self.retention.items()
            if cap is not None and not e.statutory and e.duration_months > cap
        ]
        if over:
            raise ValueError(f"retention above max_retention_months for: {', '.join(over)}")
        return self

    @model_validator(mode="after")
    def _register_entries(self) -> Policy:
        for category, entry in self.retention.items():
            owner = f"retention category {category!r}"
            problem = pointer_error(owner, entry.activity, self.records)
            if problem:
                raise ValueError(problem)
        pointed = {e.activity for e in self.retention.values()}
        for activity in self.records.activities:
            if activity.id not in pointed and not activity.retention_note:
                raise ValueError(
                    f"register activity {activity.id!r} has no retention (Art 30(1)(f)):"
                    " point a retention category at it or give retention_note"
                )
        return self

    def register_document(self, systems: dict[str, list[SystemLink]]) -> RegisterDocument:
        """The register joined with this schedule and the given system links."""
        lines = [
            (
                k,
                e.activity or "",
                RetentionLine(
                    category=k,
                    start_event=e.start_event,
                    duration_months=e.duration_months,
                    basis=e.basis,
                    action=e.action,
                    statutory=e.statutory,
                ),
            )
            for k, e in self.retention.items()
        ]
        return register_document(self.name, self.records, lines, systems)

    def schedule(self) -> dict[str, RetentionRule]:
        """The retention schedule in the rules engine's terms."""
        return {
            k: RetentionRule(k, e.start_event, e.duration_months, e.basis, e.action)
            for k, e in self.retention.items()
        }


def default_policy() -> Policy:
    """The law-level defaults of RULES.md (R-RET-2 table, 4 accesses/12 months, 24 h SLA)."""
    retention = {
        k: RetentionEntry(
            start_event=r.start_event,
            duration_months=r.months,
            basis=r.basis,
            activity=DEFAULT_ACTIVITY[k],
        )
        for k, r in DEFAULT_SCHEDULE.items()
    }
    return Policy.model_validate(
        {"name": "default", "retention": retention, "register": default_register()}
    )


def load_policy(path: str | Path) -> Policy:
    """Read and validate a YAML profile; raise PolicyError with a one-line reason."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"{path}: cannot read YAML ({exc.__class__.__name__})") from exc
    if not isinstance(raw, dict):
        raise PolicyError(f"{path}: a policy profile must be a mapping")
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "profile"
        message = first["msg"].removeprefix("Value error, ")
        raise PolicyError(f"{path}: {where}: {message}") from exc
