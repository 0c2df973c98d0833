"""Retention use cases: clocks started by contract ends and contacts, legal holds placed
and released on them (R-RET-1/2/4), and the subject each clock keeps for its purge.

A retention timer keeps its subject only to put it in the ``gardien.erasure.work.requested``
it emits years later, stored sealed under the subject key ``<timer id>`` (one key per clock:
a contract's categories end on different dates); the relay opens it when the purge work is
published. When erasure reports the purge case ``ret:<timer id>`` closed, the key is
destroyed; a new contract is a new timer id and so a new key, while the destroyed key is
never recreated. A hold is written to ``holds`` first, then applied to the timers it covers
(in the same batch); ``holdgate.py`` checks ``holds`` again when a purge is about to fire.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from services.deadlines import clocks, decide
from services.deadlines.repository import SubjectKeys
from services.deadlines.usecases import Compute, Deadlines, Inbound, Plan, Step
from shared.errors import TransitionRefused
from shared.events.common import Subject
from shared.events.inbound import ContactRecorded, ContractEnded, LegalHold
from shared.rules import local_date
from shared.subject_vault import KeyShredded

Doc = dict[str, Any]
PURGE_PREFIX = "ret:"
CASE_CLOSED = "gardien.erasure.case.closed"
STARTS = ("gdpr.contract.ended", "gdpr.contact.recorded")


def _clocks(uses: Deadlines, item: Inbound) -> list[tuple[str, str]]:
    """(category, timer id) of each retention clock a contract end or contact starts; a
    ``TransitionRefused`` for an unknown category, before anything is written."""
    data: ContractEnded | ContactRecorded = item.data
    categories = data.categories or (["customer"] if _contract(data) else ["prospect"])
    for category in categories:
        decide.known_category(category, uses.policy)
    owner = _contract(data) or clocks.subject_key(_refs(uses, data))
    return [(category, f"retention:{owner}:{category}") for category in categories]


def _contract(data: ContractEnded | ContactRecorded) -> str | None:
    return data.contract_id if isinstance(data, ContractEnded) else None


def _refs(uses: Deadlines, data: ContractEnded | ContactRecorded) -> list[str]:
    return uses.pseudonyms.refs(data.subject.identifiers.present() if data.subject else {})


async def retention_started(uses: Deadlines, item: Inbound) -> list[Step]:
    """Retention clocks per category from a contract end or a prospect's contact (R-RET-1/2)."""
    data: ContractEnded | ContactRecorded = item.data
    started = _clocks(uses, item)  # refuse before writing anything
    if item.sealed is None:  # not sealed with its batch (``seal_subjects``): alone, then
        [item] = await seal_subjects(uses, [item])
    at = data.ended_at if isinstance(data, ContractEnded) else data.contacted_at
    refs = _refs(uses, data)
    holds = await uses.repos.holds.active(refs)
    steps = []
    for category, tid in started:
        start = {
            "timer_id": tid, "category": category, "start_date": local_date(at).isoformat(),
            "contract_id": _contract(data), "subject_refs": refs,
            "subject": (item.sealed or {}).get(tid),
        }  # fmt: skip
        compute = partial(decide.retention_change, start=start, holds=holds, policy=uses.policy)
        steps.append(Step(tid, item.event, compute))
    return steps


async def seal_subjects(uses: Deadlines, items: Sequence[Inbound]) -> Sequence[Inbound]:
    """The subjects of the batch's new retention clocks, each sealed under its timer's key:
    the keys read (and the new ones created) in one go. An item comes back with ``sealed``
    (timer id -> sealed subject, None once the key is destroyed: the subject was purged)."""
    kids: dict[int, list[str]] = {}
    for item in items:
        if item.event.type in STARTS and item.data.subject is not None:
            with contextlib.suppress(TransitionRefused):  # refused by its plan, alone
                kids[id(item)] = [tid for _, tid in _clocks(uses, item)]
    if not kids:
        return items
    keys = uses.repos.vault.keys()
    await keys.prepare((k for ks in kids.values() for k in ks), uses.clock.now())
    out = []
    for item in items:
        if id(item) in kids:
            subject = item.data.subject
            sealed = {tid: await sealed_subject(keys, tid, subject) for tid in kids[id(item)]}
            item = replace(item, sealed=sealed)
        out.append(item)
    return out


async def sealed_subject(keys: SubjectKeys, timer_id: str, subject: Subject) -> Doc | None:
    """``subject`` sealed under the timer's key, or None (already purged: keep no copy).

    A retention clock keeps its subject only for the purge work it emits when the period
    ends; when erasure reports the purge case closed, the key is destroyed (``shred_closed``).
    """
    try:
        value = subject.model_dump(mode="json", exclude_none=True)
        return await keys.seal(timer_id, value, "subject")
    except KeyShredded:
        return None


HOLD_PLACED, HOLD_RELEASED = "gdpr.legal_hold.placed", "gdpr.legal_hold.released"


def _hold_doc(uses: Deadlines, item: Inbound) -> Doc:
    data: LegalHold = item.data
    refs = sorted(
        {r for s in data.scope.subjects for r in uses.pseudonyms.refs(s.identifiers.present())}
    )
    return {
        "_id": data.hold_id or data.matter, "matter": data.matter, "subject_refs": refs,
        "scope_all_subjects": not refs, "categories": list(data.scope.categories),
        "opened_on": local_date(data.at).isoformat(), "released_on": None, "active": True,
        "event_id": item.event.id,
    }  # fmt: skip


async def record_holds(uses: Deadlines, items: Sequence[Inbound]) -> Sequence[Inbound]:
    """The batch's holds recorded first, in one read and one write, folded in order: each
    hold event comes back with the hold as it stands after it (None: release of an unknown
    hold). A placed hold stored before keeps its first scope (a re-delivery)."""
    mine = [i for i in items if i.event.type in (HOLD_PLACED, HOLD_RELEASED)]
    if not mine:
        return items
    known = await uses.repos.holds.get_many(i.data.hold_id or i.data.matter for i in mine)
    new: dict[str, Doc] = {}
    released: dict[str, str] = {}
    out: list[Inbound] = []
    ids = {id(i) for i in mine}
    for item in items:
        if id(item) in ids:
            item = replace(item, hold=_fold_hold(uses, item, known, new, released))
        out.append(item)
    await uses.repos.holds.save_many(list(new.values()), released)
    return out


def _fold_hold(
    uses: Deadlines,
    item: Inbound,
    known: dict[str, Doc],
    new: dict[str, Doc],
    released: dict[str, str],
) -> Doc | None:
    key = item.data.hold_id or item.data.matter
    if item.event.type == HOLD_PLACED:
        if key not in known:
            known[key] = new[key] = _hold_doc(uses, item)
        return known[key]
    if key not in known:
        return None
    on = local_date(item.data.at).isoformat()
    known[key] = {**known[key], "released_on": on, "active": False}
    if key in new:
        new[key] = known[key]
    else:
        released[key] = on
    return known[key]


async def hold_placed(uses: Deadlines, item: Inbound) -> list[Step]:
    """An active hold blocks every purge in its scope (R-RET-4), recorded first in ``holds``."""
    assert item.hold is not None  # recorded by ``record_holds``
    return await rehold(uses, item, item.hold)


async def hold_released(uses: Deadlines, item: Inbound) -> list[Step]:
    """A release recomputes: retention ends at the later of normal end and release."""
    if item.hold is None:
        data: LegalHold = item.data
        raise TransitionRefused(f"release of unknown legal hold {data.hold_id or data.matter}")
    return await rehold(uses, item, item.hold)


async def rehold(uses: Deadlines, item: Inbound, hold: Doc) -> list[Step]:
    """Steps recording ``hold`` (placed or released) on every retention timer it covers."""
    found = await uses.repos.timers.retention_for(hold["subject_refs"], hold["categories"])
    compute: Compute = lambda d: decide.rehold_change(d, hold, uses.policy)  # noqa: E731
    return [Step(tid, item.event, compute) for tid in found]


async def shred_closed(uses: Deadlines, items: Sequence[Inbound]) -> None:
    """Closed purge cases ``ret:<timer>`` shred the subjects their clocks kept: the batch's
    keys destroyed together (one read, one write), stamped with its last closing's time."""
    closing = [i for i in items if i.event.type == CASE_CLOSED]
    timer_ids = [
        i.data.case_id.removeprefix(PURGE_PREFIX)
        for i in closing
        if i.data.case_id.startswith(PURGE_PREFIX)
    ]
    if not timer_ids:
        return
    with uses.span("deadlines.shred_subjects") as span:
        span.set_attribute("gardien.timers", len(timer_ids))
        at = max(i.event.time for i in closing)
        destroyed = await uses.repos.vault.keys().destroy_many(timer_ids, at)
        span.set_attribute("gardien.subject_keys_destroyed", len(destroyed))


async def prepare_batch(uses: Deadlines, items: Sequence[Inbound]) -> Sequence[Inbound]:
    """The batch's own writes before planning: its holds, its shredded keys, then the
    subjects of its new clocks sealed (a key shredded in the batch keeps no copy)."""
    items = await record_holds(uses, items)
    await shred_closed(uses, items)
    return await seal_subjects(uses, items)


async def case_closed(uses: Deadlines, item: Inbound) -> list[Step]:
    """A closed case changes no timer: its key was shredded with its batch (``shred_closed``)."""
    return []


PLANS: dict[str, Plan] = {
    "gdpr.contract.ended": retention_started,
    "gdpr.contact.recorded": retention_started,
    "gdpr.legal_hold.placed": hold_placed,
    "gdpr.legal_hold.released": hold_released,
    CASE_CLOSED: case_closed,
}
