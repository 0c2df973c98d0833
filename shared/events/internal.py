"""The data of every internal event, one pydantic model per type (the intake -> erasure,
erasure -> intake, deadlines -> erasure ... contracts), checked when built and when read.

Producers build events from these models and handlers receive the typed model; the AsyncAPI
description takes its schemas from them. One section per producing service.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

# ---- intake: gardien.requests.v1, gardien.erasure.work.v1 (work requested by a request) ----


# ---- deadlines: gardien.deadlines.v1, gardien.erasure.work.v1 (retention purges) ----------


# ---- erasure: gardien.erasure.commands.v1, gardien.erasure.cases.v1 ------------------------


class ErasureData(BaseModel):
    """Base of erasure's event data: checked when built, unknown fields kept when read."""

    model_config = ConfigDict(extra="allow", frozen=True)


class RetentionRule(ErasureData):
    """A system's own retention rule for a category: each record kept until its own end."""

    years: int
    start: Literal["financial_year_end", "record_date", "contract_end"]
    ground: str


class CommandLine(ErasureData):
    """One category of a command: what the system does with it and why."""

    category: str
    action: str  # erase | anonymise | restrict | suppress | delete | return
    ground: str
    kind: Literal["erasure", "restriction", "retention", "suppression", "processor_end"]
    retain_until: str | None = None  # YYYY-MM-DD when the decision fixed it
    retention: RetentionRule | None = None  # per-record rule from the registry


class CommandIssued(ErasureData):
    """``gardien.erasure.command.issued`` (key: system id; id ``<command_id>:<attempt>``)."""

    command_id: str  # <case_id>:<system>, or <case_id>/h<n>:<system> for a part freed later
    case_id: str
    system: str
    identifiers: dict[str, str]  # only those the system knows; {} for processor orders
    categories: list[CommandLine]
    action: str  # the common action, mixed, delete_all or return_all
    ground: str
    due_by: str | None = None
    attempt: int
    transport: Literal["kafka", "http"]  # Kafka consumers ignore http
    reply_to: str


class SystemView(ErasureData):
    """Where one system (or held part ``<system>/h<n>``) stands, as case events show it."""

    state: Literal["pending", "sent", "acknowledged", "held"]
    outcome: str | None = None
    retained_until: str | None = None
    attempts: int
    escalated: bool | None = None
    held_by: list[str] | None = None  # matters of the legal holds keeping it back


CaseKind = Literal["opened", "progressed", "escalated", "held", "released", "closed"]


class CaseEvent(ErasureData):
    """``gardien.erasure.case.<kind>`` (key: case id), the per-system view without identifiers.

    ``progressed`` adds system and outcome, or certificate; ``escalated`` adds system? and
    reason; ``held`` adds hold_id and matter; ``released`` adds hold_id, matter, reissued.
    """

    case_id: str
    origin: str
    state: Literal["open", "escalated", "closed"]
    systems: dict[str, SystemView]
    request_id: str | None = None
    due_by: str | None = None
    closed_at: str | None = None
    art19: dict[str, Any] | None = None
    processor: dict[str, Any] | None = None
    skipped: list[dict[str, str]] | None = None
    system: str | None = None
    outcome: str | None = None
    certificate: str | None = None
    reason: str | None = None
    hold_id: str | None = None
    matter: str | None = None
    reissued: list[str] | None = None


# ---- audit: audit-originated records --------------------------------------------------------
