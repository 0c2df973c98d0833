"""Erasure's HTTP face: one case with per-system status, and a paged list of cases."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel

from services.erasure.domain import Case
from services.erasure.repository import CaseRepository
from shared.apidoc import UtcInstant
from shared.auth import Scope, require
from shared.problems import responses

router = APIRouter(prefix="/v1/erasure/cases", tags=["erasure"], responses=responses(503))


class SystemView(BaseModel):
    system: str
    command_id: str
    transport: str
    action: str
    categories: list[dict[str, Any]]
    state: str
    outcome: str | None
    detail: str | None
    retained_until: str | None
    attempts: int
    first_sent_at: UtcInstant | None
    acknowledged_at: UtcInstant | None
    next_attempt_at: UtcInstant | None
    escalated_at: UtcInstant | None
    held_by: list[dict[str, str]]  # legal holds keeping this part back (state "held")
    history: list[dict[str, Any]]


class CaseView(BaseModel):
    case_id: str
    origin: str
    request_id: str | None
    state: str
    due_by: str | None
    opened_at: UtcInstant
    closed_at: UtcInstant | None
    systems: dict[str, SystemView]
    skipped: list[dict[str, str]]
    art19: dict[str, Any] | None
    processor: dict[str, Any] | None
    holds_pending: list[str]
    collection: dict[str, Any] | None = None  # access/portability: uploads, counts, package


class CasePage(BaseModel):
    items: list[CaseView]
    next_cursor: str | None


def _view(case: Case) -> CaseView:
    systems = {
        name: SystemView(
            **p.model_dump(include=set(SystemView.model_fields) - {"categories", "history"}),
            categories=[line.model_dump(exclude_none=True) for line in p.lines],
            history=[step.model_dump(mode="json", exclude_none=True) for step in p.steps],
        )
        for name, p in case.systems.items()
    }
    return CaseView(
        **case.model_dump(
            include={
                "case_id",
                "origin",
                "request_id",
                "state",
                "due_by",
                "opened_at",
                "closed_at",
                "skipped",
                "art19",
                "holds_pending",
            }
        ),
        systems=systems,
        processor=case.processor.model_dump(mode="json") if case.processor else None,
        collection=case.collection.model_dump(mode="json", exclude={"kid"})
        if case.collection
        else None,
    )


def _cases(request: Request) -> CaseRepository:
    erasure = getattr(request.app.state, "erasure", None)
    if erasure is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "erasure is starting")
    cases: CaseRepository = erasure.repos.cases
    return cases


@router.get("/{case_id}", dependencies=[require(Scope.AUDIT_READ)], responses=responses(404))
async def get_case(request: Request, case_id: str) -> CaseView:
    """One erasure case: per-system state, attempts, outcomes, Art 19 record."""
    found = await _cases(request).get_many([case_id])
    if case_id not in found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no erasure case {case_id!r}")
    return _view(found[case_id].case)


@router.get("", dependencies=[require(Scope.AUDIT_READ)])
async def list_cases(
    request: Request,
    state: Annotated[str | None, Query(pattern="^(open|escalated|closed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> CasePage:
    """Erasure cases in id order, optionally in one state; pass ``next_cursor`` for more."""
    cases = await _cases(request).page(state, cursor, limit + 1)
    items = [_view(case) for case in cases[:limit]]
    more = len(cases) > limit
    return CasePage(items=items, next_cursor=items[-1].case_id if more and items else None)
