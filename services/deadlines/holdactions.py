"""HTTP actions on legal holds and processor deletion certificates (deadlines owns both)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, status
from fastapi.openapi.models import Example
from pydantic import BaseModel, ConfigDict

from services.deadlines.repository import Repositories
from services.deadlines.usecases import is_closed
from shared.actions import (
    ActionAccepted,
    FormShortText,
    IdempotencyKey,
    begin,
    errors,
    missing,
    refused,
)
from shared.auth import Scope, StoredKey, require
from shared.events.common import Id, Instant
from shared.events.inbound import HoldScope

router = APIRouter()
Holds = Annotated[StoredKey, require(Scope.HOLDS_WRITE)]
Certifier = Annotated[StoredKey, require(Scope.ERASURE_WRITE)]
Reader = Annotated[StoredKey, require(Scope.AUDIT_READ)]
ACCEPTED: dict[str, Any] = {"status_code": status.HTTP_202_ACCEPTED, "responses": errors(404, 409)}
HOLD_KEYS = ("matter", "categories", "opened_on", "released_on", "active", "scope_all_subjects")


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class HoldBody(Form):
    """A hold on the subjects and/or categories of a matter; `hold_id` defaults to `matter`."""

    hold_id: Id | None = None
    matter: Id
    scope: HoldScope
    at: Instant | None = None


class Release(Form):
    at: Instant | None = None


class Certificate(Form):
    at: Instant | None = None
    certificate_ref: FormShortText | None = None


def _ex(**cases: Any) -> dict[str, Example]:
    return {name: Example(summary=name.replace("_", " "), value=v) for name, v in cases.items()}


def _repos(request: Request) -> Repositories:
    repos: Repositories = request.app.state.repositories
    return repos


async def _hold(request: Request, key: str) -> dict[str, Any] | None:
    return (await _repos(request).holds.get_many([key])).get(key)


def _hold_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A hold as shown: its id, matter, categories, dates; subjects only as a count."""
    return {
        "hold_id": str(doc["_id"]),
        **{k: doc.get(k) for k in HOLD_KEYS},
        # Booleans written with $set come back as 0/1 from the embedded server.
        "active": bool(doc.get("active")),
        "scope_all_subjects": bool(doc.get("scope_all_subjects")),
        "subjects": len(doc.get("subject_refs") or []),
    }


@router.get("/v1/holds", tags=["holds"], responses=errors())
async def list_holds(request: Request, _: Reader) -> list[dict[str, Any]]:
    """Every legal hold, active and released (subjects are counted, never shown)."""
    return [_hold_view(d) for d in await _repos(request).holds.listed(1000)]


@router.post("/v1/holds", tags=["hold actions"], **ACCEPTED)
async def hold_placed(
    request: Request,
    actor: Holds,
    body: Annotated[
        HoldBody,
        Body(
            openapi_examples=_ex(
                litigation={
                    "matter": "litige-2027-12",
                    "scope": {"categories": ["billing"]},
                    "at": "2027-03-05T09:00:00+01:00",
                }
            )
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """Place a legal hold: purges in its scope wait (R-RET-4): `gdpr.legal_hold.placed`.

    409 when a hold with this id (or matter) exists.
    """
    call = begin(request, actor, Scope.HOLDS_WRITE, idempotency_key, body)
    if (replay := await call.replay()) is not None:
        return replay
    key = body.hold_id or body.matter
    if await _hold(request, key) is not None:
        raise refused(f"legal hold {key!r} exists (released holds keep their id)")
    data = {
        **body.model_dump(mode="json", exclude_none=True),
        "at": (body.at or call.at).isoformat(),
    }
    return await call.publish("gdpr.legal_hold.placed", data)


@router.post("/v1/holds/{hold_id}/release", tags=["hold actions"], **ACCEPTED)
async def hold_released(
    request: Request,
    hold_id: str,
    actor: Holds,
    body: Annotated[
        Release, Body(openapi_examples=_ex(settled={"at": "2027-09-01T12:00:00+02:00"}))
    ],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """Release a hold: held purges resume, each at its own end: `gdpr.legal_hold.released`.

    409 when already released.
    """
    call = begin(request, actor, Scope.HOLDS_WRITE, idempotency_key, body)
    if (replay := await call.replay()) is not None:
        return replay
    hold = await _hold(request, hold_id)
    if hold is None:
        raise missing(f"legal hold {hold_id!r}")
    if not hold.get("active"):
        raise refused(f"legal hold {hold_id!r} was released on {hold.get('released_on')}")
    data = {
        "hold_id": hold_id,
        "matter": hold["matter"],
        "scope": {"categories": list(hold.get("categories") or [])},
        "at": (body.at or call.at).isoformat(),
    }
    return await call.publish("gdpr.legal_hold.released", data)


@router.post(
    "/v1/processors/{processor}/deletion-certificate", tags=["processor actions"], **ACCEPTED
)
async def deletion_certified(
    request: Request,
    processor: str,
    actor: Certifier,
    body: Annotated[
        Certificate,
        Body(
            openapi_examples=_ex(
                certified={"at": "2027-04-02T10:00:00+02:00", "certificate_ref": "CERT-118"}
            )
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """The old processor certified deletion or return (R-PROC-1).

    Publishes `gdpr.processor.deletion_certified`.

    404 when no processor-deletion clock names it; 409 when every one is closed.
    """
    call = begin(request, actor, Scope.ERASURE_WRITE, idempotency_key, body)
    if (replay := await call.replay()) is not None:
        return replay
    timers = _repos(request).timers
    ids = await timers.for_processor(processor)
    if not ids:
        raise missing(f"processor-deletion clock for processor {processor!r}")
    docs = list((await timers.load_many(ids)).values())
    if all(is_closed(d) for d in docs):
        raise refused(f"processor {processor!r}: its deletion is already certified")
    data = {**body.model_dump(mode="json", exclude_none=True), "processor": processor}
    data["at"] = (body.at or call.at).isoformat()
    return await call.publish("gdpr.processor.deletion_certified", data)
