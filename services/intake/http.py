"""Intake's HTTP face: submit a request (published, one pipeline), read, list and export."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request, status
from pydantic import BaseModel

from services.intake.details import parse_details
from services.intake.lifecycle import Status
from shared.apidoc import CSV, CsvResponse, UtcInstant, text_body
from shared.auth import Scope, require
from shared.events import new_event
from shared.events.inbound import RequestReceived
from shared.messaging import publish_event
from shared.problems import responses

router = APIRouter(prefix="/v1/requests", tags=["requests"], responses=responses())


class Accepted(BaseModel):
    request_id: str
    event_id: str
    status: str = "accepted for processing"


class RequestView(BaseModel):
    request_id: str
    right: str
    status: str
    received_at: UtcInstant
    channel: str
    subject_kind: str
    receipt_date: str | None = None
    due_date: str | None = None
    base_due_date: str | None = None
    extension_valid: bool = False
    extended_due_date: str | None = None
    effective_due_date: str | None = None
    clock: dict[str, Any] = {}
    pauses: list[dict[str, Any]] = []
    extension: dict[str, Any] | None = None
    answer: dict[str, Any] | None = None
    decisions: list[dict[str, Any]] = []
    flags: list[str] = []
    frequency: dict[str, Any] | None = None
    objection: dict[str, Any] | None = None
    post_mortem: dict[str, Any] | None = None
    details_error: str | None = None
    progress: dict[str, Any] = {}
    history: list[dict[str, Any]]
    refusals: list[dict[str, Any]] = []


class RequestPage(BaseModel):
    items: list[RequestView]
    next_cursor: str | None


def view(doc: dict[str, Any]) -> RequestView:
    """The public view of a stored request (no identifiers, no outbox)."""
    clock = doc.get("clock") or {}
    return RequestView(
        request_id=doc["_id"],
        right=doc["right"],
        status=doc["status"],
        received_at=doc["received_at"],
        channel=doc["channel"],
        subject_kind=doc["subject"]["kind"],
        receipt_date=clock.get("receipt_date"),
        due_date=clock.get("due_date"),
        base_due_date=clock.get("base_due_date", clock.get("due_date")),
        extension_valid=bool(clock.get("extension_valid", clock.get("basis") == "R-DSR-2")),
        extended_due_date=clock.get("extended_due_date"),
        effective_due_date=clock.get("effective_due_date"),
        clock=clock,
        pauses=doc.get("pauses", []),
        extension=doc.get("extension"),
        answer=doc.get("answer"),
        decisions=doc.get("decisions", []),
        flags=doc.get("flags", []),
        frequency=doc.get("frequency"),
        objection=doc.get("objection"),
        post_mortem=doc.get("post_mortem"),
        details_error=doc.get("details_error"),
        progress=doc.get("progress", {}),
        history=doc.get("history", []),
        refusals=doc.get("refusals", []),
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[require(Scope.INTAKE_WRITE)],
    responses=responses(409),
)
async def submit_request(request: Request, body: Annotated[RequestReceived, Body()]) -> Accepted:
    """Submit a data-subject request; it is published as `gdpr.request.received`.

    422 when the body or its `details` are malformed; 409 when the request id exists.
    """
    try:
        parse_details(body.details)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    intake = request.app.state.intake
    if await intake.requests.get(body.request_id) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"request {body.request_id!r} exists")
    runtime = request.app.state.runtime
    event = new_event(
        "gdpr.request.received",
        body.model_dump(mode="json", exclude_none=True),
        source="gardien/http",
        time=intake.clock.now(),
    )
    await publish_event(runtime.broker, event, body.request_id)
    return Accepted(request_id=body.request_id, event_id=event.id)


async def _page(
    request: Request, status_filter: Status | None, limit: int, cursor: str | None
) -> RequestPage:
    repo = request.app.state.intake.requests
    docs = await repo.page(status_filter.value if status_filter else None, cursor, limit)
    items = [view(d) for d in docs]
    return RequestPage(
        items=items, next_cursor=items[-1].request_id if len(items) == limit else None
    )


@router.get("", dependencies=[require(Scope.INTAKE_READ)])
async def list_requests(
    request: Request,
    status_filter: Annotated[Status | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
) -> RequestPage:
    """Requests by id, optionally of one status; pass `next_cursor` back as `cursor`."""
    return await _page(request, status_filter, limit, cursor)


CSV_FIELDS = (
    "request_id",
    "right",
    "status",
    "channel",
    "subject_kind",
    "receipt_date",
    "due_date",
    "extension_valid",
    "extended_due_date",
    "effective_due_date",
    "flags",
)


@router.get(
    "/export.csv",
    dependencies=[require(Scope.INTAKE_READ)],
    response_class=CsvResponse,
    responses={
        200: {
            **text_body(CSV, "One row per request.", ",".join(CSV_FIELDS) + "\r\n"),
            "headers": {
                "x-next-cursor": {
                    "description": "The `cursor` of the next page, when there is one.",
                    "required": False,
                    "schema": {"type": "string"},
                }
            },
        }
    },
)
async def export_requests(
    request: Request,
    status_filter: Annotated[Status | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
) -> CsvResponse:
    """Requests as CSV for record keeping (no personal data: ids, dates, status, flags)."""
    page = await _page(request, status_filter, limit, cursor)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for item in page.items:
        row = item.model_dump()
        row["flags"] = " ".join(item.flags)
        writer.writerow([row[f] if row[f] is not None else "" for f in CSV_FIELDS])
    headers = {"x-next-cursor": page.next_cursor} if page.next_cursor else {}
    return CsvResponse(out.getvalue(), headers=headers)


@router.get("/{request_id}", dependencies=[require(Scope.INTAKE_READ)], responses=responses(404))
async def get_request(request: Request, request_id: str) -> RequestView:
    """Status, receipt and due dates, pauses, decisions, flags, progress and history."""
    doc = await request.app.state.intake.requests.get(request_id)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no request {request_id!r}")
    return view(doc)
