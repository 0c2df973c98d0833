"""What every HTTP action shares: Idempotency-Key, deterministic event ids, the actor.

An action is a follow-up a person records over HTTP instead of publishing a Kafka event by
hand. Each one publishes exactly the inbound event a Kafka publisher would (validated by the
same data model), stamped with the acting key's name and scope as CloudEvents extension
attributes (``actor``, ``actorscope``) that the audit trail keeps.

With an ``Idempotency-Key`` header, the event id is derived from (key name, route, header),
so a retry publishes the same event (consumers deduplicate by event id), and the first
answer is stored in the owning service's database and given back on a replay; the same
header with a different body is refused (422).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Header, HTTPException, Request, status
from pydantic import BaseModel, StringConstraints, ValidationError
from pymongo.errors import DuplicateKeyError

from shared.auth import Scope, StoredKey
from shared.events import CloudEvent, aggregate_key, new_event
from shared.events.common import LongText, ShortText
from shared.events.envelope import _describe
from shared.events.registry import data_model
from shared.messaging import publish_event
from shared.problems import responses

# Form fields are stripped of surrounding white space, so they need one other character.
FormText = Annotated[LongText, StringConstraints(pattern=r"\S")]
FormShortText = Annotated[ShortText, StringConstraints(pattern=r"\S")]

STORE = "idempotency"  # collection in the owning service's own database
SOURCE = "gardien/http"
NAMESPACE = uuid.UUID("8a4f3c4e-2d1b-5e0a-9f6c-6b7d1e2a3c4d")

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Any printable ASCII token; a retry with the same token and body "
        "publishes the same event and gets the first answer back.",
    ),
]


class ActionAccepted(BaseModel):
    """The event an action published; the owning service applies it within moments."""

    event_id: str
    type: str
    key: str
    actor: str
    status: str = "accepted for processing"
    replayed: bool = False


def errors(*extra: int) -> dict[int | str, dict[str, Any]]:
    """The error answers an action declares in OpenAPI (401, 403, 422, and ``extra``)."""
    return responses(*extra)


def refused(reason: str) -> HTTPException:
    """409: the state does not allow the action."""
    return HTTPException(status.HTTP_409_CONFLICT, reason)


def invalid(reason: str) -> HTTPException:
    """422 with a precise reason."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, reason)


def missing(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no {what}")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass
class Call:
    """One action call: who acts, on which route, with which body and Idempotency-Key."""

    request: Request
    actor: StoredKey
    scope: Scope
    route: str
    idempotency_key: str | None
    fingerprint: str
    at: datetime

    @property
    def event_id(self) -> str:
        """Deterministic with an Idempotency-Key (a retry is the same event), else random."""
        if self.idempotency_key is None:
            return str(uuid.uuid4())
        name = f"{self.actor.name}|{self.route}|{self.idempotency_key}"
        return str(uuid.uuid5(NAMESPACE, name))

    @property
    def _store_id(self) -> str:
        return _digest(self.actor.name, self.route, self.idempotency_key or "")

    async def replay(self) -> ActionAccepted | None:
        """The stored answer of an earlier call with this key; 422 if its body differed."""
        if self.idempotency_key is None:
            return None
        db = self.request.app.state.runtime.db
        found = await db[STORE].find_one({"_id": self._store_id})
        if found is None:
            return None
        if found["fingerprint"] != self.fingerprint:
            raise invalid(
                f"Idempotency-Key {self.idempotency_key!r} was already used on this route with "
                "a different body; use a new key for a new action"
            )
        answer = ActionAccepted.model_validate(json.loads(found["answer"]))
        return answer.model_copy(update={"replayed": True})

    def event(self, event_type: str, data: dict[str, Any]) -> CloudEvent:
        """The inbound event, validated by its data model as a consumer would validate it."""
        model = data_model(event_type)
        assert model is not None, event_type
        try:
            model.model_validate(data)
        except ValidationError as exc:
            raise invalid(_describe(exc)) from None
        base = new_event(event_type, data, source=SOURCE, event_id=self.event_id, time=self.at)
        extensions = {"actor": self.actor.name, "actorscope": self.scope.value}
        return CloudEvent.model_validate({**base.model_dump(exclude_none=True), **extensions})

    async def publish(self, event_type: str, data: dict[str, Any]) -> ActionAccepted:
        """Publish the event, keep the answer for replays, and return it."""
        event = self.event(event_type, data)
        key = aggregate_key(event)
        await publish_event(self.request.app.state.runtime.broker, event, key)
        answer = ActionAccepted(event_id=event.id, type=event.type, key=key, actor=self.actor.name)
        if self.idempotency_key is not None:
            doc = {
                "_id": self._store_id,
                "fingerprint": self.fingerprint,
                "answer": answer.model_dump_json(),
                "at_ms": int(self.at.timestamp() * 1000),
            }
            with suppress(DuplicateKeyError):  # a concurrent retry stored the same answer
                await self.request.app.state.runtime.db[STORE].insert_one(doc)
        return answer


def begin(
    request: Request,
    actor: StoredKey,
    scope: Scope,
    idempotency_key: str | None,
    body: BaseModel | None,
) -> Call:
    """The call of one action; the route is the method and path as received."""
    route = f"{request.method} {request.url.path}"
    shown = body.model_dump(mode="json") if body is not None else {}
    fingerprint = _digest(route, json.dumps(shown, sort_keys=True, separators=(",", ":")))
    return Call(request, actor, scope, route, idempotency_key, fingerprint, datetime.now(UTC))
