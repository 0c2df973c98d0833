"""HTTP action: a person confirms an erasure step done by hand in a system Gardien cannot reach.

It publishes the `gdpr.erasure.result` the system would have sent, the detail saying what
was done and when; the acting key's name (who) is stamped on the event and in its detail.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Request, status
from fastapi.openapi.models import Example
from pydantic import BaseModel, ConfigDict

from services.erasure.usecases import Erasure
from shared.actions import ActionAccepted, FormText, IdempotencyKey, begin, errors, missing, refused
from shared.auth import Scope, StoredKey, require
from shared.events.common import Instant

router = APIRouter(prefix="/v1/erasure", tags=["erasure actions"])
Writer = Annotated[StoredKey, require(Scope.ERASURE_WRITE)]


class ManualStep(BaseModel):
    """What was done by hand (``what``), when (``performed_at``), with which outcome."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    outcome: Literal["erased", "anonymised", "not_found"] = "erased"
    performed_at: Instant
    what: FormText


EXAMPLE = {
    "outcome": "erased",
    "performed_at": "2027-03-10T15:20:00+01:00",
    "what": "deleted the customer's folder from the paper archive and the shared drive",
}


@router.post(
    "/cases/{case_id}/systems/{system}/manual-confirmation",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(404, 409),
)
async def manual_confirmation(
    request: Request,
    case_id: str,
    system: str,
    actor: Writer,
    body: Annotated[
        ManualStep,
        Body(openapi_examples={"archive": Example(summary="paper archive", value=EXAMPLE)}),
    ],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """Confirm a manual erasure step for one system of a case: `gdpr.erasure.result`.

    404 when the case or the system's part is unknown; 409 when the case is closed, the
    part already has a final outcome, or a legal hold keeps it back.
    """
    call = begin(request, actor, Scope.ERASURE_WRITE, idempotency_key, body)
    if (replay := await call.replay()) is not None:
        return replay
    erasure: Erasure = request.app.state.erasure
    loaded = (await erasure.repos.cases.get_many([case_id])).get(case_id)
    if loaded is None:
        raise missing(f"erasure case {case_id!r}")
    part = loaded.case.systems.get(system)
    if part is None:
        raise missing(f"system {system!r} in erasure case {case_id!r}")
    if loaded.case.state == "closed":
        raise refused(f"erasure case {case_id!r} is closed")
    if part.final:
        raise refused(f"system {system!r} already answered {part.outcome!r} in case {case_id!r}")
    if part.state == "held":
        matters = ", ".join(h.get("matter", "?") for h in part.held_by)
        raise refused(f"system {system!r} is held by legal hold(s) {matters}; release them first")
    detail = (
        f"manual step confirmed by {actor.name}: {body.what} "
        f"(performed {body.performed_at.isoformat()})"
    )
    data = {
        "command_id": part.command_id,
        "system": system,
        "outcome": body.outcome,
        "detail": detail[:4000],
        "manual": True,
        "performed_at": body.performed_at.isoformat(),
        "confirmed_by": actor.name,
    }
    return await call.publish("gdpr.erasure.result", data)


@router.get("/systems", tags=["erasure"], responses=errors())
async def systems(
    request: Request, _: Annotated[StoredKey, require(Scope.AUDIT_READ)]
) -> list[Any]:
    """The connected-system registry: transport, categories, recipient or processor."""
    erasure: Erasure = request.app.state.erasure
    keep = {"id", "description", "transport", "categories", "recipient", "processor"}
    return [s.model_dump(mode="json", include=keep) for s in erasure.registry.systems]
