"""Deadlines' HTTP face: list clocks by state, kind and deadline, with a cursor."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from services.deadlines.domain import Kind, State, from_ms, iso_utc, to_ms
from services.deadlines.repository import Listing, Repositories
from shared.apidoc import IsoInstant
from shared.auth import Scope, require
from shared.problems import responses

router = APIRouter(prefix="/v1/deadlines", tags=["deadlines"], responses=responses())
MAX_LIMIT = 500


class DeadlineView(BaseModel):
    timer_id: str
    kind: str
    state: str
    ref: dict[str, str]
    basis: str
    rules: list[str]
    due_at: str | None
    due_date: str | None
    next_fire_at: str | None
    details: dict[str, Any]


class DeadlinePage(BaseModel):
    items: list[DeadlineView]
    next_cursor: str | None


def _view(doc: dict[str, Any]) -> DeadlineView:
    nxt = doc.get("next_fire_ms")
    return DeadlineView(
        timer_id=str(doc["_id"]),
        kind=doc["kind"],
        state=doc["state"],
        ref=doc.get("ref", {}),
        basis=doc["basis"],
        rules=doc.get("rules", []),
        due_at=doc.get("due_at"),
        due_date=doc.get("due_date"),
        next_fire_at=iso_utc(from_ms(nxt)) if nxt is not None else None,
        details=doc.get("details", {}),
    )


@router.get("", dependencies=[require(Scope.AUDIT_READ)])
async def list_deadlines(
    request: Request,
    state: Annotated[list[State] | None, Query(description="open, approaching, due, ...")] = None,
    kind: Annotated[list[Kind] | None, Query()] = None,
    due_before: Annotated[IsoInstant | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[
        str | None,
        Query(
            max_length=512,
            description="`next_cursor` of the page before: any string is a "
            "position (clocks listed after it in deadline order)",
        ),
    ] = None,
) -> DeadlinePage:
    """Clocks by deadline (earliest first) with their state, due date and legal basis."""
    listing = Listing(
        states=tuple(s.value for s in state or ()),
        kinds=tuple(k.value for k in kind or ()),
        due_before_ms=to_ms(due_before) if due_before is not None else None,
        after=cursor or None,
        limit=limit + 1,
    )
    repos: Repositories = request.app.state.repositories
    docs = await repos.timers.page(listing)
    more = len(docs) > limit
    docs = docs[:limit]
    last = str(docs[-1]["sort_key"]) if more else None
    return DeadlinePage(items=[_view(d) for d in docs], next_cursor=last)
