"""Legal holds in erasure: stored from ``gdpr.legal_holds.v1``, applied to cases.

Erasure learns holds itself (its own consumer group; deadlines owns the topic and its dead
letters), so a purge or an erasure request reaching it while a hold is active never commands
the held categories, whatever the sender knew. Subject references are the shared keyed
pseudonyms (``runtime.pseudonyms``): a hold on ``Alice@Example.com`` covers a request for
``alice@example.com``. Storage: ``holds`` (one document per hold, ``_id`` = hold id).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.erasure import domain, holds, messages
from services.erasure.domain import Case
from services.erasure.repository import Events
from shared.events import CloudEvent
from shared.events.common import Subject
from shared.events.inbound import LegalHold
from shared.service import Runtime

if TYPE_CHECKING:
    from services.erasure.planning import WorkRequested
    from services.erasure.usecases import Erasure

HOLDS = "holds"
INDEXES = {
    HOLDS: [IndexModel([("subject_refs", ASCENDING)], name="subject_refs")],
    "cases": [
        IndexModel([("holds_pending", ASCENDING)], name="holds_pending"),
        IndexModel([("subject_refs", ASCENDING)], name="subject_refs"),
    ],
}
Doc = dict[str, Any]


def subject_refs(runtime: Runtime, identifiers: dict[str, str]) -> list[str]:
    """The subject's references: the one place erasure pseudonymises identifiers."""
    return runtime.pseudonyms.refs(identifiers)


class MongoHolds:
    """The holds erasure knows, active or released."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.collection: AsyncCollection[Doc] = db[HOLDS]

    async def add(self, doc: Doc) -> Doc:
        """Record a hold once; a re-delivery returns the stored one."""
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            return await self.collection.find_one({"_id": doc["_id"]}) or doc
        return doc

    async def release(self, key: str, at: datetime) -> Doc | None:
        """Mark a hold released; None when erasure never heard of it."""
        found = await self.collection.find_one({"_id": key})
        if found is not None:
            at_text = at.isoformat()
            await self.collection.update_one(
                {"_id": key}, {"$set": {"active": False, "released_at": at_text}}
            )
        return found

    async def active_for(self, refs: list[str]) -> list[holds.Hold]:
        """Active holds naming one of ``refs`` or naming no subject."""
        found = [d async for d in self.collection.find({"scope_all_subjects": True})]
        if refs:
            found += [d async for d in self.collection.find({"subject_refs": {"$in": refs}})]
        return [holds.Hold.from_doc(d) for d in found if d.get("active")]


def _refs(runtime: Runtime, subjects: list[Subject]) -> list[str]:
    return sorted({r for s in subjects for r in subject_refs(runtime, s.identifiers.present())})


async def withhold_new(erasure: Erasure, case: Case, work: WorkRequested) -> None:
    """Before a case opens: keep back what an active hold covers (state ``held``)."""
    known = work.subject.identifiers.present() if work.subject else {}
    if work.contract_id:
        known["contract_id"] = work.contract_id
    case.subject_refs = subject_refs(erasure.runtime, known)
    active = await MongoHolds(erasure.runtime.db).active_for(case.subject_refs)
    holds.withhold(case, active, case.subject_refs, erasure.registry)


async def placed(erasure: Erasure, event: CloudEvent) -> None:
    """Record a hold; add it to held parts of open cases it also covers."""
    data = LegalHold.model_validate(event.data)
    refs = _refs(erasure.runtime, list(data.scope.subjects))
    doc = await MongoHolds(erasure.runtime.db).add(
        {
            "_id": data.hold_id or data.matter,
            "matter": data.matter,
            "subject_refs": refs,
            "scope_all_subjects": not refs,
            "categories": list(data.scope.categories),
            "placed_at": data.at.isoformat(),
            "active": True,
        }
    )
    hold = holds.Hold.from_doc(doc)
    query: Doc = {"subject_refs": {"$in": refs}} if refs else {}
    for case_id in await _case_ids(erasure, query):

        def change(case: Case) -> Events | None:
            if not holds.extend(case, hold, erasure.registry):
                return None
            now = erasure.clock.now()
            return [messages.case_event(case, "held", now, **hold.ref())]

        await erasure._update(case_id, change, event.id, f"unknown case {case_id}")


async def released(erasure: Erasure, event: CloudEvent) -> None:
    """Release a hold: decide its cases again and issue what nothing holds any more."""
    data = LegalHold.model_validate(event.data)
    key = data.hold_id or data.matter
    if await MongoHolds(erasure.runtime.db).release(key, data.at) is None:
        return  # never placed here: deadlines, the topic's owner, refuses it
    calls: list[Any] = []
    for case_id in await _case_ids(erasure, {"holds_pending": {"$in": [key]}}):
        calls.clear()

        def change(case: Case) -> Events | None:
            if key not in case.holds_pending:
                return None
            now = erasure.clock.now()
            reissued = holds.release(case, key, now)
            effects = domain.advance(case, now)
            events = [
                messages.case_event(
                    case, "released", now, hold_id=key, matter=data.matter, reissued=reissued
                ),
                *erasure._effect_events(case, effects, now),
            ]
            calls[:] = erasure._http_calls(case, events)
            return events

        if await erasure._update(case_id, change, event.id, f"unknown case {case_id}"):
            await erasure._call_http(calls)


async def _case_ids(erasure: Erasure, query: Doc) -> list[str]:
    found = erasure.cases.collection.find(
        {**query, "state": {"$in": list(domain.OPEN_STATES)}}, {"_id": 1}
    )
    return [str(d["_id"]) async for d in found]
