"""Data models of the inbound events other systems publish (ARCHITECTURE.md)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator

from shared.events.common import (
    Categories,
    Count,
    Data,
    Id,
    Instant,
    LongText,
    ShortText,
    Subject,
)


class Right(StrEnum):
    ACCESS = "access"
    RECTIFICATION = "rectification"
    ERASURE = "erasure"
    RESTRICTION = "restriction"
    PORTABILITY = "portability"
    OBJECTION = "objection"
    POST_MORTEM = "post_mortem"


class RequestReceived(Data):
    request_id: Id
    right: Right
    received_at: Instant
    channel: ShortText
    subject: Subject
    details: Annotated[dict[str, Any], Field(max_length=64)] | None = None


class RequestStep(Data):
    """Follow-up of a request: identity verified, information requested or received."""

    request_id: Id
    at: Instant
    note: LongText | None = None
    reason: ShortText | None = None


class RequestExtended(RequestStep):
    reasons: Annotated[list[LongText], Field(min_length=1, max_length=20)]


class ResponseOutcome(StrEnum):
    RESPONDED = "responded"
    PARTLY_REFUSED = "partly_refused"
    REFUSED = "refused"


class RequestResponded(RequestStep):
    outcome: ResponseOutcome = ResponseOutcome.RESPONDED
    reasons: Annotated[list[LongText], Field(max_length=20)] = []
    complaint_rights_given: bool = False

    @model_validator(mode="after")
    def _refusal_has_reasons(self) -> RequestResponded:
        if self.outcome is not ResponseOutcome.RESPONDED and not self.reasons:
            raise ValueError("a refusal (partly_refused/refused) needs reasons (GDPR Art 12(4))")
        return self


class ContractEnded(Data):
    contract_id: Id | None = None
    subject: Subject | None = None
    ended_at: Instant
    categories: Categories = []
    amount_eur: Annotated[float, Field(ge=0, le=1e12)] | None = None
    electronic: bool | None = None

    @model_validator(mode="after")
    def _has_aggregate(self) -> ContractEnded:
        if self.contract_id is None and self.subject is None:
            raise ValueError("contract_id or subject is required")
        return self


class ContactRecorded(Data):
    subject: Subject
    contacted_at: Instant
    categories: Categories = []


class Reporter(StrEnum):
    CONTROLLER = "controller"
    PROCESSOR = "processor"


class Risk(StrEnum):
    UNLIKELY = "unlikely"
    RISK = "risk"
    HIGH = "high"


class BreachDetected(Data):
    # The rule of ``_processor_time`` below, for schema readers (OpenAPI, AsyncAPI).
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"reported_by": {"const": "processor"}}},
            "then": {
                "required": ["processor_aware_at"],
                "properties": {"processor_aware_at": {"type": "string"}},
            },
        }
    )

    breach_id: Id
    aware_at: Instant
    reported_by: Reporter
    processor_aware_at: Instant | None = None
    risk: Risk
    categories: Categories
    approx_subjects: Count
    approx_records: Count
    # Art 34(3) conditions the controller relies on, e.g. "c_disproportionate_effort".
    art34_3_conditions: Annotated[list[ShortText], Field(max_length=3)] = []

    @model_validator(mode="after")
    def _processor_time(self) -> BreachDetected:
        if self.reported_by is Reporter.PROCESSOR and self.processor_aware_at is None:
            raise ValueError("processor_aware_at is required when reported_by is processor")
        return self


class BreachNotified(Data):
    breach_id: Id
    at: Instant
    reasons_for_delay: LongText | None = None


class ControllerChoice(StrEnum):
    DELETE = "delete"
    RETURN = "return"


class ProcessorReplaced(Data):
    old_processor: Id
    new_processor: Id
    effective_at: Instant
    controller_choice: ControllerChoice | None = None
    contractual_days: Annotated[int, Field(ge=0, le=3650)] | None = None
    categories: Categories = []


class ProcessorDeletionCertified(Data):
    processor: Id
    at: Instant
    certificate_ref: ShortText | None = None


class HoldScope(Data):
    subjects: Annotated[list[Subject], Field(max_length=1000)] = []
    categories: Categories = []


class LegalHold(Data):
    hold_id: Id | None = None
    matter: Id
    scope: HoldScope
    at: Instant


class ErasureOutcome(StrEnum):
    ERASED = "erased"
    ANONYMISED = "anonymised"
    RETAINED = "retained"
    NOT_FOUND = "not_found"
    FAILED = "failed"


class ErasureResult(Data):
    command_id: Id
    system: Id
    outcome: ErasureOutcome
    detail: LongText | None = None
    retained_until: Instant | None = None


class ExportOutcome(StrEnum):
    EXPORTED = "exported"
    NOT_FOUND = "not_found"
    FAILED = "failed"


class ExportResult(Data):
    """``gdpr.export.result``: how much a system exported (the data go to the upload URL)."""

    command_id: Id
    system: Id
    outcome: ExportOutcome
    records: Annotated[int, Field(ge=0)] | None = None
    bytes: Annotated[int, Field(ge=0)] | None = None
    detail: LongText | None = None
