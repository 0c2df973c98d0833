"""Audit's HTTP face: query the trail with cursor pagination."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import AwareDatetime, BaseModel

from shared.auth import Scope, require

router = APIRouter(prefix="/v1/audit", tags=["audit"])
MAX_LIMIT = 500


class AuditPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


def _encode(doc: dict[str, Any]) -> str:
    raw = json.dumps([doc["recorded_at"].isoformat(), doc["_id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        at, rid = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), str(rid)
    except (ValueError, TypeError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "cursor is not valid") from exc


def _view(doc: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in doc.items() if k not in {"_id", "chain_seq"}}
    shown["record_id"] = doc["_id"]
    shown["recorded_at"] = doc["recorded_at"].isoformat()
    return shown


@router.get("/events", dependencies=[require(Scope.AUDIT_READ)])
async def list_events(
    request: Request,
    subject: Annotated[
        str | None, Query(max_length=256, description="An identifier, e.g. an e-mail")
    ] = None,
    request_id: Annotated[str | None, Query(max_length=128)] = None,
    case_id: Annotated[str | None, Query(max_length=128)] = None,
    breach_id: Annotated[str | None, Query(max_length=128)] = None,
    type: Annotated[str | None, Query(max_length=128)] = None,
    from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    to: Annotated[AwareDatetime | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> AuditPage:
    """Audit records, oldest first, filtered by subject, request, case, breach, type, time."""
    auditor = request.app.state.auditor
    query: dict[str, Any] = {}
    if subject:
        # ``$in`` rather than plain equality: same meaning on MongoDB, and the embedded
        # server only matches array elements through ``$in`` when the field is indexed.
        query["subject_refs"] = {"$in": [await auditor.subject_ref(subject)]}
    for field, value in (
        ("refs.request_id", request_id),
        ("refs.case_id", case_id),
        ("refs.breach_id", breach_id),
        ("type", type),
    ):
        if value:
            query[field] = value
    window = {k: v for k, v in (("$gte", from_), ("$lt", to)) if v is not None}
    if window:
        query["recorded_at"] = window
    if cursor:
        at, rid = _decode(cursor)
        query["$or"] = [{"recorded_at": {"$gt": at}}, {"recorded_at": at, "_id": {"$gt": rid}}]
    found = (
        auditor.store.records.find(query).sort([("recorded_at", 1), ("_id", 1)]).limit(limit + 1)
    )
    docs = [doc async for doc in found]
    more = len(docs) > limit
    docs = docs[:limit]
    return AuditPage(
        items=[_view(d) for d in docs], next_cursor=_encode(docs[-1]) if more else None
    )
