"""Intake's HTTP face: submit a request (published, one pipeline) and read its state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request, status
from pydantic import BaseModel

from shared.auth import Scope, require
from shared.events import new_event
from shared.events.inbound import RequestReceived
from shared.messaging import publish_event

router = APIRouter(prefix="/v1/requests", tags=["requests"])


class Accepted(BaseModel):
    request_id: str
    event_id: str
    status: str = "accepted for processing"


class RequestView(BaseModel):
    request_id: str
    right: str
    status: str
    received_at: datetime
    channel: str
    subject_kind: str
    history: list[dict[str, Any]]
    decisions: list[dict[str, Any]] = []
    progress: dict[str, Any] = {}


@router.post("", status_code=status.HTTP_202_ACCEPTED, dependencies=[require(Scope.INTAKE_WRITE)])
async def submit_request(request: Request, body: Annotated[RequestReceived, Body()]) -> Accepted:
    """Submit a data-subject request; it is published as `gdpr.request.received`."""
    runtime = request.app.state.runtime
    event = new_event(
        "gdpr.request.received",
        body.model_dump(mode="json", exclude_none=True),
        source="gardien/http",
        time=datetime.now(UTC),
    )
    await publish_event(runtime.broker, event, body.request_id)
    return Accepted(request_id=body.request_id, event_id=event.id)


@router.get("/{request_id}", dependencies=[require(Scope.INTAKE_READ)])
async def get_request(request: Request, request_id: str) -> RequestView:
    """Status, receipt, history and decisions of one request."""
    doc = await request.app.state.intake.requests.get(request_id)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no request {request_id!r}")
    return RequestView(
        request_id=doc["_id"],
        right=doc["right"],
        status=doc["status"],
        received_at=doc["received_at"],
        channel=doc["channel"],
        subject_kind=doc["subject"]["kind"],
        history=doc.get("history", []),
        decisions=doc.get("decisions", []),
        progress=doc.get("progress", {}),
    )
