"""The data of every internal event, one pydantic model per type (the intake -> erasure,
erasure -> intake, deadlines -> erasure ... contracts), checked when built and when read.

Producers build events from these models and handlers receive the typed model; the AsyncAPI
description takes its schemas from them. One section per producing service.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# ---- intake: gardien.requests.v1, gardien.erasure.work.v1 (work requested by a request) ----


# ---- deadlines: gardien.deadlines.v1, gardien.erasure.work.v1 (retention purges) ----------


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


class PurgeCategory(BaseModel):
    """One category a retention purge erases or anonymises (R-RET-1)."""

    model_config = ConfigDict(frozen=True)

    category: str
    action: str = Field(description="erase | anonymise")
    ground: str = Field(description="R-RET-1 retention expired (<basis of the category>)")
    retain_until: str | None = Field(default=None, description="The effective end of retention")


class RetentionPurgeRequested(BaseModel):
    """``gardien.erasure.work.requested`` of a retention clock (key: case_id ``ret:<timer>``)."""

    model_config = ConfigDict(frozen=True)

    case_id: str = Field(description="ret:<timer_id>")
    origin: Literal["retention"] = "retention"
    timer_id: str
    categories: list[PurgeCategory]
    due_by: str | None = Field(description="The purge date (YYYY-MM-DD)")
    subject: dict[str, Any] | None = Field(
        default=None, description="{kind, identifiers}: sealed while stored, opened when sent"
    )
    contract_id: str | None = None


# ---- erasure: gardien.erasure.commands.v1, gardien.erasure.cases.v1 ------------------------


# ---- audit: audit-originated records --------------------------------------------------------
