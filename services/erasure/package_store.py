"""The access package use case: build it from the uploads, deliver it, delete it later.

``build`` streams the ZIP (``assembly.py``) into the blob ``package:<request_id>``, sealed
under the collection case's key, and records it; ``open`` hands the stream to the download
route and records the delivery (the first: ``delivered``, the request is met; later ones:
``downloaded``, a further copy, flagged chargeable within the policy's access window and
never refused, Art 15(3)); ``link`` issues the subject's single-use link; ``expire`` deletes
packages delivered longer ago than ``package_keep_days``, and their uploads. Every step
saves the record and its event together and relays it (``package_repo.py``); the events
carry ids, counts and digests only, and the audit service chains them.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from services.erasure import package_links
from services.erasure.assembly import Sources, package_stream
from services.erasure.package_repo import PackageRepository, PackageState
from services.erasure.packages import Outcome, PackageOrder
from services.erasure.settings import ErasureSettings
from shared.blobs import BlobMissing
from shared.clock import Clock, SystemClock, epoch_ms
from shared.errors import GardienError, NotFound, TransientError
from shared.events import CloudEvent, new_event
from shared.events.internal import (
    PackageBuilt,
    PackageDeleted,
    PackageDelivered,
    PackageDownloaded,
    PackageLinkIssued,
)
from shared.rules import add_months

SOURCE = "gardien/erasure"
ROUNDS = 5  # lost races redone before giving up (transient)
Spans = Callable[[str], AbstractContextManager[Any]]
Shred = Callable[[str, datetime], Awaitable[object]]


class PackageMissing(NotFound):
    """No package is expected for this request (404)."""


class PackageNotReady(GardienError):
    """The collection is under way: no package yet (409)."""


class PackageGone(GardienError):
    """The package was deleted, shredded, or the link already used (410)."""


@dataclass(frozen=True)
class PackageInfo:
    """A package as the routes and the collection side see it."""

    request_id: str
    package_id: str
    state: str
    size: int
    sha256: str | None
    built_at: str | None
    delivered_at: str | None
    downloads: int
    systems: dict[str, str]
    chargeable: bool = False  # of the delivery just recorded (open)


def info(state: PackageState, chargeable: bool = False) -> PackageInfo:
    """The view of a recorded package."""
    return PackageInfo(
        state.request_id,
        state.package_id,
        state.state,
        state.size,
        state.sha256,
        state.built_at,
        state.delivered_at,
        state.downloads,
        dict(state.systems),
        chargeable,
    )


def _event(kind: str, data: BaseModel, event_id: str, now: datetime) -> tuple[CloudEvent, str]:
    body = data.model_dump(mode="json")
    event = new_event(
        f"gardien.access.package.{kind}", body, source=SOURCE, event_id=event_id, time=now
    )
    return event, str(body["request_id"])


class Packages:
    """Build, deliver and expire access packages (wired in ``services/erasure/app.py``)."""

    def __init__(
        self,
        repo: PackageRepository,
        sources: Sources,
        broker: KafkaBroker,
        settings: ErasureSettings,
        span: Spans | None = None,
        clock: Clock | None = None,
        shred: Shred | None = None,
    ) -> None:
        self.repo, self.sources, self.broker, self.settings = repo, sources, broker, settings
        self.clock: Clock = clock or SystemClock()
        self.shred = shred  # destroys the package's key at expiry (crypto-shredding)
        self.link_key = package_links.link_key(settings.signing_secret.get_secret_value().encode())
        self.span: Spans = span or (lambda _: nullcontext())

    async def _save(self, state: PackageState, events: list[tuple[CloudEvent, str]]) -> bool:
        change = await self.repo.save(state, events)
        if change is None:
            return False
        await self.repo.relay(self.broker, change)
        return True

    async def expect(self, request_ids: Sequence[str], now: datetime) -> None:
        """Record that these requests' packages will come (their downloads answer 409 until
        built): one read and one write for the batch; ids already recorded are left alone."""
        await self.repo.ensure(request_ids)

    async def build(self, order: PackageOrder, now: datetime) -> PackageInfo:
        """Stream the ZIP into the blob store, record it, emit ``built``; once per request."""
        with self.span("erasure.package.build"):
            for _ in range(ROUNDS):
                state = await self.repo.get(order.request_id) or PackageState(
                    request_id=order.request_id
                )
                if state.state != "collecting":
                    return info(state)
                outcomes: dict[str, Outcome] = {}
                stream = package_stream(self.sources, order, now, outcomes)
                blob = await self.sources.blobs.write(state.package_id, order.kid, stream, now=now)
                built = state.model_copy(
                    update={
                        "state": "built",
                        "right": order.right,
                        "kid": order.kid,
                        "subject": order.subject,
                        "uploads": sorted({a.blob_id for a in order.answers if a.blob_id}),
                        "built_at": now.isoformat(),
                        "size": blob.size,
                        "sha256": blob.sha256,
                        "systems": {s: o.status for s, o in outcomes.items()},
                        "records": sum(o.records for o in outcomes.values()),
                    }
                )
                data = PackageBuilt(
                    request_id=built.request_id,
                    package_id=built.package_id,
                    right=order.right,
                    built_at=now.isoformat(),
                    size=blob.size,
                    sha256=blob.sha256,
                    systems=built.systems,
                    records=built.records,
                )
                if await self._save(
                    built, [_event("built", data, f"{built.package_id}:built", now)]
                ):
                    return info(built)
            raise TransientError(f"package of {order.request_id} kept changing")

    async def _ready(self, request_id: str) -> PackageState:
        state = await self.repo.get(request_id)
        if state is None:
            raise PackageMissing(f"no access package for request {request_id!r}")
        if state.state == "collecting":
            raise PackageNotReady(f"the package of request {request_id!r} is not built yet")
        if state.state == "deleted":
            raise PackageGone(
                f"the package of request {request_id!r} was deleted on {state.deleted_at}"
            )
        return state

    async def open(
        self,
        request_id: str,
        actor: str,
        now: datetime,
        *,
        via: str = "api",
        link_id: str | None = None,
    ) -> tuple[PackageInfo, AsyncIterator[bytes]]:
        """The package's bytes for a download, the delivery recorded and audited first."""
        with self.span("erasure.package.open"):
            for _ in range(ROUNDS):
                state = await self._ready(request_id)
                if link_id is not None and link_id in state.links_used:
                    raise PackageGone("this link was already used")
                stream = await self._stream(state)
                delivered, event = await self._delivery(state, actor, via, now)
                if link_id is not None:
                    delivered.links_used = [*state.links_used, link_id]
                if await self._save(delivered, [event]):
                    return info(delivered, bool(event[0].data["chargeable"])), stream
                await stream.aclose()
            raise TransientError(f"package of {request_id} kept changing")

    async def _stream(self, state: PackageState) -> AsyncGenerator[bytes, None]:
        """The blob's stream, its first piece already read (a shredded key fails here)."""
        assert state.kid is not None
        source = self.sources.blobs.read(state.package_id, state.kid)
        try:
            first = await anext(source)
        except (BlobMissing, StopAsyncIteration):
            raise PackageGone(
                f"the package of request {state.request_id!r} is no longer readable"
            ) from None

        async def chained() -> AsyncGenerator[bytes, None]:
            yield first
            async for piece in source:
                yield piece

        return chained()

    async def _delivery(
        self, state: PackageState, actor: str, via: str, now: datetime
    ) -> tuple[PackageState, tuple[CloudEvent, str]]:
        since = epoch_ms(datetime.combine(add_months(now.date(), -12), now.timetz()))
        copy = state.downloads + 1
        updated = state.model_copy(deep=True, update={"downloads": copy})
        ids = {"request_id": state.request_id, "package_id": state.package_id}
        if state.delivered_at is None:
            earlier = state.subject is not None and await self.repo.delivered_since(
                state.subject, since, state.request_id
            )
            keep = timedelta(days=self.settings.package_keep_days)
            updated.delivered_at, updated.delivered_ms = now.isoformat(), epoch_ms(now)
            updated.expires_ms = epoch_ms(now + keep)
            first = PackageDelivered(
                **ids,
                delivered_at=now.isoformat(),
                chargeable=earlier,
                actor=actor,
                via=via,
            )
            return updated, _event("delivered", first, f"{state.package_id}:delivered", now)
        chargeable = (state.delivered_ms or 0) >= since
        again = PackageDownloaded(
            **ids,
            downloaded_at=now.isoformat(),
            copy_number=copy,
            chargeable=chargeable,
            actor=actor,
            via=via,
        )
        return updated, _event("downloaded", again, f"{state.package_id}:download:{copy}", now)

    async def link(self, request_id: str, actor: str, now: datetime) -> tuple[str, datetime]:
        """A single-use, expiring token for the data subject's download."""
        for _ in range(ROUNDS):
            state = await self._ready(request_id)
            link_id, expires = (
                secrets.token_hex(8),
                now + timedelta(seconds=self.settings.package_link_seconds),
            )
            token = package_links.issue(self.link_key, request_id, link_id, epoch_ms(expires))
            issued = state.model_copy(deep=True, update={"links": [*state.links, link_id]})
            data = PackageLinkIssued(
                request_id=request_id,
                package_id=state.package_id,
                link_id=link_id,
                expires_at=expires.isoformat(),
                actor=actor,
            )
            if await self._save(
                issued, [_event("link_issued", data, f"{state.package_id}:link:{link_id}", now)]
            ):
                return token, expires
        raise TransientError(f"package of {request_id} kept changing")

    async def open_link(
        self, token: str, now: datetime
    ) -> tuple[PackageInfo, AsyncIterator[bytes]]:
        """The subject's download through a link: once, before it expires."""
        request_id, link_id = package_links.verify(self.link_key, token, epoch_ms(now))
        state = await self.repo.get(request_id)
        if state is None or link_id not in state.links:
            raise PackageMissing("no such link")
        return await self.open(request_id, "subject-link", now, via="link", link_id=link_id)

    async def expire(self, now: datetime) -> list[str]:
        """Delete packages whose keep period after delivery ended, with their uploads."""
        with self.span("erasure.package.expire"):
            deleted = []
            for state in await self.repo.due(epoch_ms(now), self.settings.sweep_batch):
                removed = await self.sources.blobs.delete([state.package_id, *state.uploads])
                if self.shred is not None and state.kid:
                    await self.shred(state.kid, now)  # copies in backups become noise too
                gone = state.model_copy(
                    update={"state": "deleted", "deleted_at": now.isoformat(), "expires_ms": None}
                )
                data = PackageDeleted(
                    request_id=state.request_id,
                    package_id=state.package_id,
                    deleted_at=now.isoformat(),
                    reason="expired",
                    blobs=removed,
                )
                if await self._save(
                    gone, [_event("deleted", data, f"{state.package_id}:deleted", now)]
                ):
                    deleted.append(state.request_id)
            return deleted

    async def relay_pending(self) -> int:
        """Publish package events a crash left behind."""
        return await self.repo.relay_left(self.broker)
