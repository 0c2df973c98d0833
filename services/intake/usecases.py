"""Intake use cases, batch-shaped: load -> decide (domain) -> save with outbox -> relay.

One batch = the events of one partition of one poll. Per batch: one read of the requests it
touches, one read of the subjects' history and one insert of the new entries, one read (or
insert) of the new requests' subject keys, decisions in memory (events of one request folded
in order), one bulk save, lost races redone alone, and one relay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from services.intake import domain
from services.intake.domain import NewRequest, Request
from services.intake.messages import CaseReport, PackageDelivered
from services.intake.repository import HistoryEntry, KeyRing, Requests, SubjectHistory, SubjectKeys
from shared import rules
from shared.clock import Clock
from shared.errors import RefusedEvents
from shared.events import CloudEvent
from shared.events.inbound import RequestReceived, RequestStep
from shared.outbox import PERSONAL, opened_event, outbox_entry, seal_event
from shared.persistence import Change, retry_lost
from shared.pseudonyms import Pseudonymiser
from shared.subject_vault import SubjectVault

Arrival = tuple[CloudEvent, RequestReceived | RequestStep]
Report = tuple[CloudEvent, CaseReport]
Delivery = tuple[CloudEvent, PackageDelivered]
Span = Callable[[str], AbstractContextManager[Any]]
CASE_CLOSED = "gardien.erasure.case.closed"


def key_id(request_id: str) -> str:
    """The subject key of one request: a new request is a new relationship, a new key."""
    return f"request:{request_id}"


def request_id_of(event: CloudEvent, report: CaseReport) -> tuple[str, str] | None:
    """(case kind, request id) of a case report about a request; None for other cases."""
    kind, _, rest = report.case_id.partition(":")
    request_id = report.request_id or rest
    return (kind, request_id) if kind in ("req", "obj", "acc") and request_id else None


def _no_span(name: str) -> AbstractContextManager[Any]:
    return nullcontext(_NoSpan())


class _NoSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        return None


@dataclass(frozen=True)
class Repositories:
    """Intake's storage: what the bootstrap builds (MongoDB) or tests pass (memory)."""

    requests: Requests
    history: SubjectHistory
    keys: SubjectKeys


@dataclass
class Intake:
    """The intake use cases over injected repositories, clock and pseudonymiser."""

    repos: Repositories
    pseudonyms: Pseudonymiser
    policy: rules.Policy
    clock: Clock
    span: Span = _no_span

    @property
    def requests(self) -> Requests:
        return self.repos.requests

    @property
    def history(self) -> SubjectHistory:
        return self.repos.history

    @property
    def keys(self) -> SubjectKeys:
        return self.repos.keys

    async def relay_pending(self) -> int:
        """Publish events a crash left in request documents."""
        return await self.requests.relay_pending()

    async def requests_arrived(self, batch: Sequence[Arrival]) -> None:
        """``gdpr.requests.v1``: new requests screened together, follow-ups folded per request.

        A follow-up for an unknown request is refused after the others are stored:
        ``RefusedEvents`` names it, and the consumer dead-letters it alone (no replay).
        """
        with self.span("intake.requests") as span:
            span.set_attribute("gardien.batch_size", len(batch))
            unknown: dict[str, str] = {}
            saved: list[Change] = []

            async def attempt(ids: list[str]) -> list[str]:
                mine = [a for a in batch if a[1].request_id in ids]
                changes = await self._decide_requests(mine, unknown)
                result = await self.requests.save_many(changes)
                saved.extend(result.saved)
                return result.lost

            await retry_lost({data.request_id for _, data in batch}, attempt)
            span.set_attribute("gardien.events_relayed", await self.requests.relay(saved))
            if unknown:  # the others are stored: the consumer dead-letters these alone
                raise RefusedEvents(unknown)

    async def _decide_requests(
        self, batch: Sequence[Arrival], unknown: dict[str, str]
    ) -> list[Change]:
        now = self.clock.now()
        found = await self.requests.load_many(data.request_id for _, data in batch)
        state = {i: Request.loaded(doc) for i, doc in found.items()}
        fresh = _first_receipts(batch, state)
        ring = await self.keys.ring([key_id(d.request_id) for _, d in fresh], now)
        state.update({r.id: r for r in await self._new_requests(fresh, ring, now)})
        created = {event.id for event, _ in fresh}
        for event, data in batch:
            found_req = state.get(data.request_id)
            if found_req is None:
                unknown[event.id] = f"unknown request {data.request_id}"
            elif isinstance(data, RequestReceived):
                if event.id not in created:
                    domain.received_again(found_req, event, data)
            else:
                domain.follow_up(found_req, event, data, self.policy.timezone)
        return [c for req in state.values() if (c := await _change(req, ring, now)) is not None]

    async def _new_requests(
        self, fresh: Sequence[tuple[CloudEvent, RequestReceived]], ring: KeyRing, now: datetime
    ) -> list[Request]:
        """Screen the batch's new requests together (one history read, one insert)."""
        if not fresh:
            return []
        refs = {
            d.request_id: self.pseudonyms.refs(d.subject.identifiers.present()) for _, d in fresh
        }
        known = _by_subject(await self.history.of_subjects(h for hs in refs.values() for h in hs))
        out: list[Request] = []
        for event, data in fresh:
            hashes, right = refs[data.request_id], data.right.value
            receipt = domain.receipt_of(data, self.policy)
            past = _past_dates(known, hashes, right, data.request_id) if right == "access" else []
            decision, details = domain.screen(data, self.policy, past)
            for h in hashes:
                known.setdefault(h, []).append(HistoryEntry(h, data.request_id, right, receipt))
            kid = key_id(data.request_id)
            identifiers = data.subject.identifiers.present()
            sealed = await ring.seal(kid, identifiers, "subject.identifiers", now)
            sealed_details = (
                await ring.seal(kid, data.details, "details", now) if data.details else {}
            )
            new = NewRequest(event, data, decision, details, hashes, sealed, sealed_details)
            out.append(domain.new_request(new, self.policy, now))
        await self.history.record_many(
            [e for es in known.values() for e in es if e.request_id in refs]
        )
        return out

    async def cases_reported(self, batch: Sequence[Report]) -> None:
        """``gardien.erasure.cases.v1``: per-system progress; a closed case closes its request
        (when answered) and shreds the subject keys it ends."""
        about = [(e, r, *ref) for e, r in batch if (ref := request_id_of(e, r)) is not None]
        if not about:
            return  # retention and processor cases are not requests
        with self.span("intake.cases") as span:
            span.set_attribute("gardien.batch_size", len(about))
            saved: list[Change] = []
            closing: dict[str, Request | None] = {}

            async def attempt(ids: list[str]) -> list[str]:
                now = self.clock.now()
                found = await self.requests.load_many(ids)
                state = {i: Request.loaded(doc) for i, doc in found.items()}
                for event, report, kind, rid in about:
                    if rid in ids and rid in state:
                        domain.case_reported(state[rid], event, report, kind)
                    if rid in ids and event.type == CASE_CLOSED:
                        closing[rid] = state.get(rid)
                ring = await self.keys.ring([], now)
                changes = [c for r in state.values() if (c := await _change(r, ring, now))]
                result = await self.requests.save_many(changes)
                saved.extend(result.saved)
                return result.lost

            await retry_lost({rid for *_, rid in about}, attempt)
            await self.requests.relay(saved)
            span.set_attribute("gardien.subject_keys_destroyed", await self._shred(closing))

    async def packages_delivered(self, batch: Sequence[Delivery]) -> None:
        """``gardien.access.package.delivered``: the access answer is given, the request met.

        A delivery for a request intake does not know is skipped (erasure owns the topic).
        """
        if not batch:
            return
        saved: list[Change] = []

        async def attempt(ids: list[str]) -> list[str]:
            now = self.clock.now()
            found = await self.requests.load_many(ids)
            state = {i: Request.loaded(doc) for i, doc in found.items()}
            for event, data in batch:
                if data.request_id in state:
                    domain.package_delivered(state[data.request_id], event, data, self.policy)
            ring = await self.keys.ring([], now)
            changes = [c for r in state.values() if (c := await _change(r, ring, now))]
            result = await self.requests.save_many(changes)
            saved.extend(result.saved)
            return result.lost

        with self.span("intake.packages_delivered") as span:
            span.set_attribute("gardien.batch_size", len(batch))
            await retry_lost({data.request_id for _, data in batch}, attempt)
            await self.requests.relay(saved)

    async def _shred(self, closing: dict[str, Request | None]) -> int:
        """Destroy the keys the closed cases end (idempotent: redeliveries shred again)."""
        if not closing:
            return 0
        refs = {h for r in closing.values() if r is not None for h in r.doc.get("subject_refs", [])}
        known = await self.history.of_subjects(refs) if refs else []
        kids: set[str] = set()
        for rid, req in closing.items():
            if req is None:
                kids.add(key_id(rid))
                continue
            mine = set(req.doc.get("subject_refs", []))
            others = [e.request_id for e in known if e.subject_hash in mine]
            kids |= {key_id(i) for i in domain.keys_to_shred(req, others)}
        return await self.keys.destroy_many(kids, self.clock.now())


def _first_receipts(
    batch: Sequence[Arrival], state: dict[str, Request]
) -> list[tuple[CloudEvent, RequestReceived]]:
    """The first ``received`` of each request not stored yet, in batch order."""
    out: dict[str, tuple[CloudEvent, RequestReceived]] = {}
    for event, data in batch:
        if isinstance(data, RequestReceived) and data.request_id not in state:
            out.setdefault(data.request_id, (event, data))
    return list(out.values())


def _by_subject(entries: Sequence[HistoryEntry]) -> dict[str, list[HistoryEntry]]:
    out: dict[str, list[HistoryEntry]] = {}
    for e in entries:
        out.setdefault(e.subject_hash, []).append(e)
    return out


def _past_dates(
    known: dict[str, list[HistoryEntry]], hashes: Sequence[str], right: str, exclude: str
) -> list[Any]:
    """Receipt dates of the subject's other requests of ``right``, once per request."""
    seen = {
        e.request_id: e.receipt_date
        for h in hashes
        for e in known.get(h, [])
        if e.right == right and e.request_id != exclude
    }
    return list(seen.values())


async def _change(req: Request, ring: KeyRing, now: datetime) -> Change | None:
    """The stored change of ``req``: fields, outbox (sealed) and events as sent (opened)."""
    if not (req.held or req.events or req.released or req.changed or req.pending):
        return None  # with pending entries (a relay failed): saved again and relayed
    kid = key_id(req.id)
    if req.held:
        held = [outbox_entry(await _sealed(w, ring, kid, now), _key(w, req.id)) for w in req.held]
        req.doc["held_work"] = [*domain.entries(req.doc.get("held_work")), *held]
    stored = [*req.pending, *req.released]
    sent = [(await _opened(e, ring), str(e["key"])) for e in stored]
    for event in req.events:
        stored.append(outbox_entry(await _sealed(event, ring, kid, now), _key(event, req.id)))
        sent.append((event, _key(event, req.id)))
    return Change(req.id, req.version, req.changed, stored, sent)


async def _opened(entry: dict[str, Any], ring: KeyRing) -> CloudEvent:
    event = CloudEvent.model_validate(entry["event"])
    if not any(name in event.data for name in PERSONAL):
        return event
    return await opened_event(event, cast(SubjectVault, ring))  # it uses only ``open``


async def _sealed(event: CloudEvent, ring: KeyRing, kid: str, now: datetime) -> CloudEvent:
    return await seal_event(event, cast(SubjectVault, ring), kid, now)  # it uses only ``seal``


def _key(event: CloudEvent, request_id: str) -> str:
    return str(event.data.get("case_id", request_id))
