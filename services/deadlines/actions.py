"""HTTP actions on the clocks deadlines owns: breaches, legal holds, processor certificates.

Each checks the clock or hold it changes (404 unknown, 409 when its state does not allow
the action) and publishes the inbound event a Kafka publisher would.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, status
from fastapi.openapi.models import Example
from pydantic import BaseModel, ConfigDict

from services.deadlines import holdactions
from services.deadlines.domain import Base, from_ms
from services.deadlines.repository import Listing, Repositories, TimerRepository
from services.deadlines.usecases import is_closed
from shared.actions import (
    ActionAccepted,
    FormText,
    IdempotencyKey,
    begin,
    errors,
    invalid,
    missing,
    refused,
)
from shared.auth import Scope, StoredKey, require
from shared.events.common import Instant
from shared.events.inbound import BreachDetected

router = APIRouter(tags=["breach, hold and processor actions"])
Breaches = Annotated[StoredKey, require(Scope.BREACHES_WRITE)]
Reader = Annotated[StoredKey, require(Scope.AUDIT_READ)]
ACCEPTED: dict[str, Any] = {"status_code": status.HTTP_202_ACCEPTED, "responses": errors(404, 409)}
AT = "2027-03-07T09:00:00+01:00"
DETECTED = {
    "breach_id": "br-2027-004",
    "aware_at": "2027-03-05T16:45:00+01:00",
    "reported_by": "controller",
    "risk": "high",
    "categories": ["contact"],
    "approx_subjects": 1200,
    "approx_records": 1500,
}


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Notification(Form):
    """When it was sent (now if omitted); reasons are required when it is late (Art 33(1))."""

    at: Instant | None = None
    reasons_for_delay: FormText | None = None


def _ex(**cases: Any) -> dict[str, Example]:
    return {name: Example(summary=name.replace("_", " "), value=v) for name, v in cases.items()}


def _timers(request: Request) -> TimerRepository:
    repos: Repositories = request.app.state.repositories
    return repos.timers


async def _timer(request: Request, timer_id: str) -> dict[str, Any] | None:
    return (await _timers(request).load_many([timer_id])).get(timer_id)


async def _clock(request: Request, breach_id: str, which: str) -> dict[str, Any]:
    doc = await _timer(request, f"breach:{breach_id}:{which}")
    if doc is None:
        raise missing(f"breach {breach_id!r}")
    return doc


def _clock_view(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    due = doc.get("due_ms")
    keep = ("kind", "state", "base", "basis", "rules", "due_at", "details")
    return {
        "timer_id": str(doc["_id"]),
        **{k: doc.get(k) for k in keep},
        "due_at": from_ms(due).isoformat() if due is not None else None,
    }


@router.get("/v1/breaches", tags=["breaches"], responses=errors())
async def list_breaches(request: Request, _: Reader) -> list[dict[str, Any]]:
    """Every breach with its authority (72 h) and data-subject clocks."""
    listing = Listing(kinds=("breach_authority", "breach_subjects"), limit=1000)
    docs = await _timers(request).page(listing)
    found: dict[str, dict[str, Any]] = {}
    for doc in docs:
        bid = doc["ref"]["breach_id"]
        which = "authority" if doc["kind"] == "breach_authority" else "subjects"
        found.setdefault(bid, {"breach_id": bid})[which] = _clock_view(doc)
    return list(found.values())


@router.get("/v1/breaches/{breach_id}", tags=["breaches"], responses=errors(404))
async def get_breach(request: Request, breach_id: str, _: Reader) -> dict[str, Any]:
    """One breach's clocks: due instants, state, whether reasons for delay are required."""
    authority = await _clock(request, breach_id, "authority")
    subjects = await _timer(request, f"breach:{breach_id}:subjects")
    return {
        "breach_id": breach_id,
        "authority": _clock_view(authority),
        "subjects": _clock_view(subjects),
    }


@router.post("/v1/breaches", **ACCEPTED)
async def breach_detected(
    request: Request,
    actor: Breaches,
    body: Annotated[BreachDetected, Body(openapi_examples=_ex(high_risk=DETECTED))],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """Record a breach; the 72 h clock starts at `aware_at`: `gdpr.breach.detected`.

    409 when a breach with this id exists (use PUT to update it).
    """
    call = begin(request, actor, Scope.BREACHES_WRITE, idempotency_key, body)
    if (replay := await call.replay()) is not None:
        return replay
    if await _timer(request, f"breach:{body.breach_id}:authority") is not None:
        raise refused(f"breach {body.breach_id!r} exists; PUT /v1/breaches/{{id}} updates it")
    return await call.publish("gdpr.breach.detected", body.model_dump(mode="json"))


@router.put("/v1/breaches/{breach_id}", **ACCEPTED)
async def breach_updated(
    request: Request,
    breach_id: str,
    actor: Breaches,
    body: Annotated[BreachDetected, Body(openapi_examples=_ex(risk_revised=DETECTED))],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """Update what is known (risk, counts, Art 34(3) conditions): `gdpr.breach.detected` again.

    409 when the body's `breach_id` differs from the path (a PUT representation inconsistent
    with its target, RFC 9110 §9.3.4) and once both clocks are closed.
    """
    call = begin(request, actor, Scope.BREACHES_WRITE, idempotency_key, body)
    if (replay := await call.replay()) is not None:
        return replay
    authority = await _clock(request, breach_id, "authority")  # 404 first: unknown breach
    if body.breach_id != breach_id:
        raise refused(f"breach_id {body.breach_id!r} in the body differs from the path")
    authority = await _clock(request, breach_id, "authority")
    subjects = await _timer(request, f"breach:{breach_id}:subjects")
    if is_closed(authority) and (subjects is None or is_closed(subjects)):
        raise refused(f"breach {breach_id!r}: every notification is recorded; nothing to update")
    return await call.publish("gdpr.breach.detected", body.model_dump(mode="json"))


async def _notify(
    request: Request,
    breach_id: str,
    which: str,
    call_args: tuple[StoredKey, str | None, Notification],
    public: bool = False,
) -> ActionAccepted:
    actor, idem, body = call_args
    call = begin(request, actor, Scope.BREACHES_WRITE, idem, body)
    if (replay := await call.replay()) is not None:
        return replay
    doc = await _clock(request, breach_id, which)
    if is_closed(doc):
        raise refused(f"breach {breach_id!r}: the {which} notification is already recorded")
    details = doc.get("details") or {}
    if which == "subjects" and public != (details.get("communication") == "public_communication"):
        wanted = "public-communication" if not public else "subjects-notification"
        raise refused(f"breach {breach_id!r}: this breach's communication is {wanted}")
    at = body.at or call.at
    due = doc.get("due_ms")
    if (
        due is not None
        and Base(doc["base"]) is not Base.NOT_REQUIRED
        and not body.reasons_for_delay
    ) and at > from_ms(due):
        raise invalid(
            f"reasons_for_delay is required: notified at {at.isoformat()}, after the "
            f"deadline {from_ms(due).isoformat()} ({ARTICLE[which]}, R-BR-3)"
        )
    data = {**body.model_dump(mode="json", exclude_none=True), "breach_id": breach_id}
    data["at"] = at.isoformat()
    if public:
        data["communication"] = "public_communication"
    kind = "authority_notified" if which == "authority" else "subjects_notified"
    return await call.publish(f"gdpr.breach.{kind}", data)


ARTICLE = {"authority": "GDPR Art 33(1)", "subjects": "GDPR Art 34(1)"}
NOTIFIED = _ex(on_time={"at": AT}, late={"at": AT, "reasons_for_delay": "forensics took 4 days"})


@router.post("/v1/breaches/{breach_id}/authority-notification", **ACCEPTED)
async def authority_notified(
    request: Request,
    breach_id: str,
    actor: Breaches,
    body: Annotated[Notification, Body(openapi_examples=NOTIFIED)],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """The supervisory authority was notified: `gdpr.breach.authority_notified`.

    422 when late without `reasons_for_delay`; 409 when already recorded.
    """
    return await _notify(request, breach_id, "authority", (actor, idempotency_key, body))


@router.post("/v1/breaches/{breach_id}/subjects-notification", **ACCEPTED)
async def subjects_notified(
    request: Request,
    breach_id: str,
    actor: Breaches,
    body: Annotated[Notification, Body(openapi_examples=NOTIFIED)],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """The data subjects were told (Art 34(1)): `gdpr.breach.subjects_notified`.

    409 when already recorded, or when the breach calls for a public communication.
    """
    return await _notify(request, breach_id, "subjects", (actor, idempotency_key, body))


@router.post("/v1/breaches/{breach_id}/public-communication", **ACCEPTED)
async def public_communication(
    request: Request,
    breach_id: str,
    actor: Breaches,
    body: Annotated[Notification, Body(openapi_examples=NOTIFIED)],
    idempotency_key: IdempotencyKey = None,
) -> ActionAccepted:
    """A public communication replaced the individual one (Art 34(3)(c)).

    Publishes `gdpr.breach.subjects_notified` (with `communication: public_communication`);
    409 unless the breach relies on Art 34(3)(c).
    """
    args = (actor, idempotency_key, body)
    return await _notify(request, breach_id, "subjects", args, public=True)


router.include_router(holdactions.router)
