"""Webhook subscriptions over HTTP (scope ``webhooks:admin``)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field, HttpUrl

from services.audit import crypto, webhooks
from services.audit.dispatcher import SECRETS_KEY, Dispatcher, ms
from shared.auth import Scope, require
from shared.problems import responses

router = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    dependencies=[require(Scope.WEBHOOKS_ADMIN)],
    responses=responses(),
)
MISSING = responses(404, text={404: "No webhook (or delivery) with this id."})
EventFilter = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-z0-9_.]+\*?$")]


class NewWebhook(BaseModel):
    url: HttpUrl
    event_types: Annotated[list[EventFilter], Field(max_length=64)] = []
    description: Annotated[str, Field(max_length=256)] = ""


def _dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


def _shown(doc: dict[str, Any]) -> dict[str, Any]:
    hidden = {"_id", "secret"}
    return {"id": doc["_id"], **{k: v for k, v in doc.items() if k not in hidden}}


@router.post("", status_code=status.HTTP_201_CREATED)
async def subscribe(request: Request, body: NewWebhook) -> dict[str, Any]:
    """Subscribe a URL to audited events; the signing secret is shown in this reply only."""
    dispatcher = _dispatcher(request)
    try:
        await webhooks.check_url(str(body.url), dispatcher.settings.webhook_allow)
    except webhooks.UrlRefused as exc:
        raise HTTPException(422, str(exc)) from exc
    repos = dispatcher.repos
    sub_id = "wh_" + secrets.token_hex(8)
    secret = crypto.new_webhook_secret()
    sealed = crypto.seal(await repos.keys.secret(SECRETS_KEY), secret, f"webhook|{sub_id}")
    doc = {
        "_id": sub_id,
        "url": str(body.url),
        "event_types": body.event_types,
        "description": body.description,
        "state": "active",
        "created_at": dispatcher.clock.now().isoformat(),
        "consecutive_failures": 0,
        "secret": sealed,
    }
    await repos.webhooks.add(doc)
    dispatcher.invalidate()
    return {**_shown(doc), "secret": secret}


@router.get("")
async def list_webhooks(request: Request) -> dict[str, Any]:
    """Every subscription (secrets are never shown again)."""
    found = await _dispatcher(request).repos.webhooks.listed()
    return {"items": [_shown(d) for d in found]}


async def _get(request: Request, webhook_id: str) -> dict[str, Any]:
    doc = await _dispatcher(request).repos.webhooks.get(webhook_id)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such webhook")
    return doc


@router.get("/{webhook_id}", responses=MISSING)
async def get_webhook(request: Request, webhook_id: str) -> dict[str, Any]:
    """One subscription, with its failure count and state."""
    return _shown(await _get(request, webhook_id))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=MISSING)
async def unsubscribe(request: Request, webhook_id: str) -> Response:
    """Remove a subscription; its queued deliveries are cancelled when they come due."""
    await _get(request, webhook_id)
    await _dispatcher(request).repos.webhooks.remove(webhook_id)
    _dispatcher(request).invalidate()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{webhook_id}/enable", responses=MISSING)
async def enable(request: Request, webhook_id: str) -> dict[str, Any]:
    """Re-enable a subscription that was disabled after repeated failures."""
    await _get(request, webhook_id)
    await _dispatcher(request).repos.webhooks.enable(webhook_id)
    _dispatcher(request).invalidate()
    return _shown(await _get(request, webhook_id))


@router.get("/{webhook_id}/deliveries", responses=MISSING)
async def deliveries(
    request: Request,
    webhook_id: str,
    state: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """The delivery log of one subscription, newest first, with every attempt."""
    await _get(request, webhook_id)
    repos = _dispatcher(request).repos
    found = await repos.deliveries.of_subscription(webhook_id)
    items = [{"id": d.pop("_id"), **d} for d in found]
    if state:
        items = [i for i in items if i.get("state") == state]
    items.sort(key=lambda i: (int(i.get("created_at", 0)), str(i["id"])), reverse=True)
    items = items[:limit]
    attempts: dict[str, list[dict[str, Any]]] = {str(i["id"]): [] for i in items}
    for a in await repos.deliveries.attempts_of(sorted(attempts)):
        attempts[str(a["delivery_id"])].append({k: v for k, v in a.items() if k != "_id"})
    for item in items:
        item["log"] = sorted(attempts[str(item["id"])], key=lambda a: int(a["at"]))
    return {"items": items}


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    responses=MISSING,
)
async def replay(request: Request, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    """Send a delivery again now (same ``webhook-id``, so receivers can de-duplicate)."""
    dispatcher = _dispatcher(request)
    if not await dispatcher.repos.deliveries.replay(delivery_id, webhook_id, ms(dispatcher.clock)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such delivery")
    return {"id": delivery_id, "state": "pending"}
