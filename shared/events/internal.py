"""The data of every internal event, one pydantic model per type (the intake -> erasure,
erasure -> intake, deadlines -> erasure ... contracts), checked when built and when read.

Producers build events from these models and handlers receive the typed model; the AsyncAPI
description takes its schemas from them. One section per producing service.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.common import Category, Data, Id, Instant, LongText, ShortText, Subject

# ---- intake: gardien.requests.v1, gardien.erasure.work.v1 (work requested by a request) ----

Status = Literal[
    "received",
    "awaiting_identity",
    "awaiting_information",
    "in_progress",
    "extended",
    "responded",
    "partly_refused",
    "refused",
    "closed",
]
Flags = Annotated[list[ShortText], Field(max_length=64)]


class RequestClock(Data):
    """A request's legal clock (R-DSR-1..3): dates ``YYYY-MM-DD``, ends at 24:00 Paris."""

    receipt_date: date
    raw_due_date: date | None = None
    due_date: date | None = None  # the one-month end with paused days; null while paused
    base_due_date: date | None = None  # = due_date
    extension_valid: bool = False
    extension_notified_on: date | None = None
    extended_due_date: date | None = None
    effective_due_date: date | None = None  # extended end when valid, else the base end
    paused_days: int = 0
    paused_since: date | None = None
    state: Literal["running", "paused", "stopped"]
    calendar: ShortText
    basis: Literal["R-DSR-1", "R-DSR-2"]
    late_information_requests: list[date] = []
    responded_on: date | None = None
    on_time: bool | None = None


class RequestAccepted(Data):
    """``gardien.request.accepted``: the request is recorded once and its clock runs."""

    request_id: Id
    right: ShortText
    status: Status
    received_at: Instant
    channel: ShortText
    subject_kind: ShortText
    clock: RequestClock | None = None  # intake always sends it; deadlines can do without
    flags: Flags = []


class RequestStatusChanged(Data):
    """``gardien.request.status_changed``: a move of the lifecycle and the clock after it."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    request_id: Id
    from_status: Status = Field(alias="from")
    to: Status
    cause: ShortText  # the type of the event that caused the move
    at: Instant
    clock: RequestClock | None = None  # as for RequestAccepted
    flags: Flags = []
    reasons: Annotated[list[LongText], Field(max_length=20)] | None = None
    reason: ShortText | None = None
    outcome: ShortText | None = None
    complaint_rights_given: bool | None = None


class CategoryDecision(Data):
    """The rules engine's decision on one data category (R-DSR-6, R-DSR-7, R-DSR-12)."""

    category: Category
    action: Literal["erase", "refuse", "retain_restricted", "refuse_while_hold", "suppress"]
    ground: LongText
    retain_until: date | None = None


class RequestDecided(Data):
    """``gardien.request.decided``: decisions, flags and screening results of a new request.

    ``frequency`` (access, Art 12(5)), ``objection`` and ``post_mortem`` are the rules
    engine's results as documented in docs/intake.md; more keys may be added to them.
    """

    request_id: Id
    right: ShortText
    decisions: Annotated[list[CategoryDecision], Field(max_length=200)] = []
    flags: Flags = []
    frequency: dict[str, Any] | None = None
    objection: dict[str, Any] | None = None
    post_mortem: dict[str, Any] | None = None
    details_error: LongText | None = None


class RequestTransitionRefused(Data):
    """``gardien.request.transition_refused``: a follow-up not applied (audited)."""

    request_id: Id
    cause: ShortText
    status: Status  # unchanged
    reason: LongText


class WorkCategory(Data):
    """One category of erasure work and what to do with it."""

    category: Category
    action: Literal["erase", "anonymise", "restrict", "suppress"]
    ground: LongText
    retain_until: date | None = None


class ErasureWorkRequested(Data):
    """``gardien.erasure.work.requested`` from intake: a request's (or objection's) work.

    Keyed by ``case_id`` (``req:<request_id>``, ``obj:<request_id>``); ``subject`` carries the
    identifiers the request carried; ``due_by`` is the request's effective due date.
    """

    case_id: Id
    origin: Literal["request", "objection"]
    request_id: Id
    subject: Subject
    categories: Annotated[list[WorkCategory], Field(min_length=1, max_length=200)]
    due_by: date | None = None


class AccessWorkRequested(Data):
    """``gardien.access.work.requested`` from intake: collect an access/portability answer.

    Keyed by ``case_id`` (``acc:<request_id>``); ``subject`` carries the request's identifiers
    (sealed in intake's outbox and held work, opened when published); ``categories`` narrows
    the collection to those categories (empty: every category the registry knows).
    """

    case_id: Id
    request_id: Id
    right: Literal["access", "portability"]
    subject: Subject
    categories: Annotated[list[Category], Field(max_length=200)] = []
    received_at: Instant
    due_by: date | None = None


# ---- deadlines: gardien.deadlines.v1, gardien.erasure.work.v1 (retention purges) ----------


DEADLINE_KINDS = ("scheduled", "approaching", "due", "met", "missed")


class DeadlineEvent(BaseModel):
    """``gardien.deadline.scheduled|approaching|due|met|missed`` (key: timer_id).

    Closures (``stage: closed``) add what closed the clock (``notified_at``, ``late``,
    ``reasons_for_delay_*``, ``responded_on``, ``on_time``, ``certified_on``, ``status``):
    more fields may be added, so extra fields are allowed.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    timer_id: str = Field(description="The clock: request:<id>, breach:<id>:authority, ...")
    kind: str = Field(description="request | breach_authority | breach_subjects | retention ...")
    ref: dict[str, str] = Field(description="request_id, breach_id, contract_id or processor")
    due_at: str | None = Field(description="The deadline instant (UTC, ISO 8601), if any")
    basis: str = Field(description="The primary rule id, e.g. R-DSR-1")
    rules: list[str] = Field(description="Every rule the clock applies")
    due_date: str | None = Field(default=None, description="The due date (YYYY-MM-DD)")
    offset: str | None = Field(default=None, description="For approaching: ISO 8601 duration")
    state: str | None = Field(default=None, description="For scheduled: the state shown")
    stage: str | None = Field(default=None, description="closed | deadline_passed")


class RetentionPurgeRequested(BaseModel):
    """``gardien.erasure.work.requested`` of a retention clock (key: case_id ``ret:<timer>``).

    Same wire shape as intake's ``ErasureWorkRequested`` (categories are ``WorkCategory``),
    with origin ``retention``, the timer and the contract; ``subject`` is built in its stored
    form (sealed under the clock's key) and opened when the event is published.
    """

    model_config = ConfigDict(frozen=True)

    case_id: str = Field(description="ret:<timer_id>")
    origin: Literal["retention"] = "retention"
    timer_id: str
    categories: Annotated[list[WorkCategory], Field(min_length=1, max_length=200)]
    due_by: str | None = Field(description="The purge date (YYYY-MM-DD)")
    subject: dict[str, Any] | None = Field(
        default=None, description="{kind, identifiers}: sealed while stored, opened when sent"
    )
    contract_id: str | None = None


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
    kind: Literal["erasure", "restriction", "retention", "suppression", "processor_end", "export"]
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
    upload_url: str | None = None  # export: signed, expiring PUT for this command's data
    upload_expires_at: str | None = None  # export: when upload_url stops being accepted


class SystemView(ErasureData):
    """Where one system (or held part ``<system>/h<n>``) stands, as case events show it."""

    state: Literal["pending", "sent", "acknowledged", "held"]
    outcome: str | None = None
    retained_until: str | None = None
    attempts: int
    escalated: bool | None = None
    held_by: list[str] | None = None  # matters of the legal holds keeping it back
    action: str | None = None  # the command's action (export for a collection case)
    detail: str | None = None  # collection cases: the system's last word (no personal data)
    records: int | None = None  # collection cases: how many records the system exported
    uploaded: bool | None = None  # collection cases: its data arrived on the upload URL


CASE_KINDS = ("opened", "progressed", "escalated", "held", "released", "closed")


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
    package_id: str | None = None  # collection cases: the package built when it closed


class WorkLine(Data):
    """One category of work as erasure reads it, whoever asked (intake or deadlines)."""

    category: str
    action: str  # erase | anonymise | restrict | suppress | retain_restricted | refuse...
    ground: str = ""
    retain_until: str | None = None


class ProcessorChange(Data):
    """A processor's replacement as erasure plans it (R-PROC-1)."""

    old: Id
    new: Id
    controller_choice: Literal["delete", "return"] | None = None
    contractual_days: Annotated[int, Field(ge=0, le=3650)] | None = None
    effective_at: datetime | None = None
    categories: list[str] = []


class WorkRequested(Data):
    """``gardien.erasure.work.requested`` as consumed: intake's ``ErasureWorkRequested``
    (request, objection), deadlines' ``RetentionPurgeRequested`` (retention), or processor
    work with its terms."""

    case_id: Id
    origin: Literal["request", "retention", "objection", "processor"]
    request_id: Id | None = None
    subject: Subject | None = None
    categories: Annotated[list[WorkLine], Field(max_length=200)] = []
    due_by: str | None = None
    processor: ProcessorChange | None = None
    contract_id: Id | None = None  # retention work may know the contract, not the subject


class RegisterChanged(ErasureData):
    """``gardien.register.changed`` (id ``register:<sequence>:<hash prefix>``): Art 30."""

    register_hash: str
    previous_hash: str | None = None
    policy: str
    sequence: int
    activities: list[str]
    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []
    controller_changed: bool = False


# ---- the gardien command: gardien.operations.v1 ---------------------------------------------


class DlqRedriven(Data):
    """``gardien.operation.dlq_redriven``: an operator sent a dead letter back (audited)."""

    dlq_topic: ShortText
    dlq_offset: int
    source_topic: ShortText
    reason: Annotated[str, Field(max_length=4000)]  # as the refusing service wrote it
    operator: Annotated[str, Field(max_length=256)]


# ---- erasure: gardien.access.package.* on gardien.erasure.cases.v1 (key: request id) ----------


class PackageEvent(ErasureData):
    """Base of the access package's events: ids, never a subject's data or identifiers."""

    request_id: str
    package_id: str


class PackageBuilt(PackageEvent):
    """``gardien.access.package.built``: the ZIP is stored, sealed under the case's key."""

    right: Literal["access", "portability"]
    built_at: str
    size: int
    sha256: str  # of the ZIP as delivered
    systems: dict[str, str]  # system -> answered | not_found | failed | no_answer
    records: int


Via = Literal["api", "link"]  # the DPO's download route, or the subject's single-use link


class PackageDelivered(PackageEvent):
    """``gardien.access.package.delivered``: the first download; the request is met on it."""

    delivered_at: str
    chargeable: bool  # Art 15(3): a further copy within the policy's window (never refused)
    actor: str  # the API key's name, or "subject-link"
    via: Via


class PackageDownloaded(PackageEvent):
    """``gardien.access.package.downloaded``: every later download (a further copy)."""

    downloaded_at: str
    copy_number: int  # 2 for the second download, ...
    chargeable: bool
    actor: str
    via: Via


class PackageLinkIssued(PackageEvent):
    """``gardien.access.package.link_issued``: a single-use link for the subject."""

    link_id: str
    expires_at: str
    actor: str


class PackageDeleted(PackageEvent):
    """``gardien.access.package.deleted``: the package and the uploads it was built from."""

    deleted_at: str
    reason: Literal["expired"]
    blobs: int  # how many blobs were removed
