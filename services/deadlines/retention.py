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

from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from services.deadlines import clocks, decide
from services.deadlines.usecases import Compute, Deadlines, Inbound, Plan, Step
from shared.errors import TransitionRefused
from shared.events.common import Subject
from shared.events.inbound import ContactRecorded, ContractEnded, LegalHold
from shared.rules import local_date
from shared.subject_vault import KeyShredded

Doc = dict[str, Any]
PURGE_PREFIX = "ret:"
CASE_CLOSED = "gardien.erasure.case.closed"


async def retention_started(uses: Deadlines, item: Inbound) -> list[Step]:
    """Retention clocks per category from a contract end or a prospect's contact (R-RET-1/2)."""
    data: ContractEnded | ContactRecorded = item.data
    contract_id = data.contract_id if isinstance(data, ContractEnded) else None
    at = data.ended_at if isinstance(data, ContractEnded) else data.contacted_at
    default = ["customer"] if isinstance(data, ContractEnded) else ["prospect"]
    categories = data.categories or default
    for category in categories:
        decide.known_category(category, uses.policy)  # refuse before writing anything
    refs = uses.pseudonyms.refs(data.subject.identifiers.present() if data.subject else {})
    owner = contract_id or clocks.subject_key(refs)
    holds = await uses.repos.holds.active(refs)
    steps = []
    for category in categories:
        tid = f"retention:{owner}:{category}"
        start = {
            "timer_id": tid, "category": category, "start_date": local_date(at).isoformat(),
            "contract_id": contract_id, "subject_refs": refs,
            "subject": await sealed_subject(uses, tid, data.subject),
        }  # fmt: skip
        compute = partial(decide.retention_change, start=start, holds=holds, policy=uses.policy)
        steps.append(Step(tid, item.event, compute))
    return steps


async def sealed_subject(uses: Deadlines, timer_id: str, subject: Subject | None) -> Doc | None:
    """``subject`` sealed under the timer's key, or None (no subject, or already purged).

    A retention clock keeps its subject only for the purge work it emits when the period
    ends; when erasure reports the purge case closed, the key is destroyed (``case_closed``).
    """
    if subject is None:
        return None
    try:
        value = subject.model_dump(mode="json", exclude_none=True)
        return await uses.repos.vault.seal(timer_id, value, "subject")
    except KeyShredded:
        return None  # the purge already erased this subject: keep no copy


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


async def case_closed(uses: Deadlines, item: Inbound) -> list[Step]:
    """A closed purge case ``ret:<timer>`` shreds the subject its retention clock kept."""
    case_id = item.data.case_id
    if case_id.startswith(PURGE_PREFIX):
        timer_id = case_id.removeprefix(PURGE_PREFIX)
        with uses.span("deadlines.shred_subject") as span:
            span.set_attribute("gardien.timer_id", timer_id)
            destroyed = await uses.repos.vault.destroy(timer_id, item.event.time)
            span.set_attribute("gardien.subject_key_destroyed", destroyed)
    return []


PLANS: dict[str, Plan] = {
    "gdpr.contract.ended": retention_started,
    "gdpr.contact.recorded": retention_started,
    "gdpr.legal_hold.placed": hold_placed,
    "gdpr.legal_hold.released": hold_released,
    CASE_CLOSED: case_closed,
}
