"""HTTP actions on a request: the follow-ups a DPO records instead of publishing by hand.

Each checks the request's current state with the same state machine the consumer runs
(409 when it would refuse), then publishes the inbound event (`gdpr.request.*`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Request, status
from fastapi.openapi.models import Example
from pydantic import BaseModel, ConfigDict, Field

from services.intake import domain, lifecycle
from shared.actions import (
    ActionAccepted,
    FormShortText,
    FormText,
    IdempotencyKey,
    begin,
    errors,
    missing,
    refused,
)
from shared.auth import Scope, StoredKey, require
from shared.errors import TransitionRefused
from shared.events.common import Instant
from shared.events.inbound import RequestStep
from shared.events.registry import data_model

router = APIRouter(prefix="/v1/requests", tags=["request actions"])
Writer = Annotated[StoredKey, require(Scope.INTAKE_WRITE)]
AT = "2027-03-09T10:00:00+01:00"


class StepBody(BaseModel):
    """When it happened (now if omitted) and an optional note (sealed in the audit trail)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    at: Instant | None = None
    note: FormText | None = None


class InfoRequestBody(StepBody):
    reason: Annotated[
        FormShortText | None,
        Field(description="`identity_verification` pauses for identity; anything else is "
              "a clarification (Art 12(6), R-DSR-3)"),
    ] = None  # fmt: skip


class ExtensionBody(StepBody):
    reasons: Annotated[list[FormText], Field(min_length=1, max_length=20)]


class ResponseBody(StepBody):
    reasons: Annotated[list[FormText], Field(max_length=20)] = []
    complaint_rights_given: Annotated[bool, Field(strict=True)] = False


class RefusalBody(StepBody):
    outcome: Literal["refused", "partly_refused"] = "refused"
    reasons: Annotated[list[FormText], Field(min_length=1, max_length=20)]
    complaint_rights_given: Annotated[bool, Field(strict=True)] = False


def _examples(**cases: dict[str, Any]) -> dict[str, Example]:
    return {name: Example(summary=name.replace("_", " "), value=v) for name, v in cases.items()}


async def _act(
    request: Request,
    actor: StoredKey,
    idem: str | None,
    request_id: str,
    kind: str,
    body: StepBody,
    extra: dict[str, Any] | None = None,
) -> ActionAccepted:
    """Replay, or check the transition against the stored request, then publish."""
    call = begin(request, actor, Scope.INTAKE_WRITE, idem, body)
    replay = await call.replay()
    if replay is not None:
        return replay
    uses = request.app.state.intake
    doc = await uses.requests.get(request_id)
    if doc is None:
        raise missing(f"request {request_id!r}")
    data = {
        **body.model_dump(mode="json", exclude_none=True),
        "at": (body.at or call.at).isoformat(),
        "request_id": request_id,
        **(extra or {}),
    }
    event_type = f"gdpr.request.{kind}"
    event = call.event(event_type, data)
    model = data_model(event_type)
    assert model is not None
    payload = model.model_validate(event.data)
    assert isinstance(payload, RequestStep)
    try:
        lifecycle.apply(
            lifecycle.lifecycle_of(doc), domain.step_of(event, payload, uses.policy.timezone)
        )
    except TransitionRefused as exc:
        raise refused(exc.reason) from None
    except KeyError:
        raise refused(f"request {request_id!r} is still being recorded; retry shortly") from None
    return await call.publish(event_type, data)


ACCEPTED = {"status_code": status.HTTP_202_ACCEPTED, "responses": errors(404, 409)}


@router.post("/{request_id}/identity-verification", **ACCEPTED)  # type: ignore[arg-type]
async def identity_verified(
    request: Request,
    request_id: str,
    actor: Writer,
    body: Annotated[StepBody, Body(openapi_examples=_examples(verified={"at": AT}))],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """The subject's identity was verified: publishes `gdpr.request.identity_verified`.

    409 when the request is not waiting for it (closed, answered, already in progress).
    """
    return await _act(request, actor, idempotency_key, request_id, "identity_verified", body)


@router.post("/{request_id}/information-request", **ACCEPTED)  # type: ignore[arg-type]
async def info_requested(
    request: Request,
    request_id: str,
    actor: Writer,
    body: Annotated[
        InfoRequestBody,
        Body(
            openapi_examples=_examples(
                identity={"at": AT, "reason": "identity_verification"},
                clarification={"at": AT, "reason": "which account", "note": "two accounts"},
            )
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """Information was asked of the subject (the clock pauses): `gdpr.request.info_requested`."""
    return await _act(request, actor, idempotency_key, request_id, "info_requested", body)


@router.post("/{request_id}/information-received", **ACCEPTED)  # type: ignore[arg-type]
async def info_received(
    request: Request,
    request_id: str,
    actor: Writer,
    body: Annotated[StepBody, Body(openapi_examples=_examples(received={"at": AT}))],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """The subject answered (the clock resumes): `gdpr.request.info_received`.

    409 when no information was awaited.
    """
    return await _act(request, actor, idempotency_key, request_id, "info_received", body)


@router.post("/{request_id}/extension", **ACCEPTED)  # type: ignore[arg-type]
async def extended(
    request: Request,
    request_id: str,
    actor: Writer,
    body: Annotated[
        ExtensionBody,
        Body(
            openapi_examples=_examples(
                complex_request={"at": AT, "reasons": ["data held in four archived systems"]}
            )
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """Extend by two months with reasons (Art 12(3)): `gdpr.request.extended`.

    422 without reasons; 409 when already extended, answered, or past the one-month limit.
    """
    return await _act(request, actor, idempotency_key, request_id, "extended", body)


@router.post("/{request_id}/response", **ACCEPTED)  # type: ignore[arg-type]
async def responded(
    request: Request,
    request_id: str,
    actor: Writer,
    body: Annotated[ResponseBody, Body(openapi_examples=_examples(answered={"at": AT}))],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """The answer was sent: `gdpr.request.responded` with outcome `responded`.

    409 when already answered or while waiting for the subject.
    """
    extra = {"outcome": "responded"}
    return await _act(request, actor, idempotency_key, request_id, "responded", body, extra)


@router.post("/{request_id}/refusal", **ACCEPTED)  # type: ignore[arg-type]
async def refusal(
    request: Request,
    request_id: str,
    actor: Writer,
    body: Annotated[
        RefusalBody,
        Body(
            openapi_examples=_examples(
                manifestly_unfounded={
                    "at": AT,
                    "outcome": "refused",
                    "reasons": ["manifestly excessive: fifth identical request this month"],
                    "complaint_rights_given": True,
                }
            )
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """A refusal, whole or partial, with its grounds (Art 12(4)): `gdpr.request.responded`.

    422 without reasons; 409 when already answered.
    """
    return await _act(request, actor, idempotency_key, request_id, "responded", body)
