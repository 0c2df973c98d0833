"""The subject a retention clock must name in its purge work, sealed under the clock's key.

A retention timer keeps its subject only to put it in the ``gardien.erasure.work.requested``
it emits years later. It is stored sealed under the subject key ``<timer id>`` (one key per
clock: a contract's categories end on different dates) in deadlines' ``subject_keys``;
the outbox relay opens it when the purge work is published. When erasure reports the purge
case ``ret:<timer id>`` closed, the key is destroyed; a new contract is a new timer id and
so a new key, while the destroyed key is never recreated.
"""

from __future__ import annotations

from typing import Any

from services.deadlines.usecases import Deadlines
from shared.events import CloudEvent
from shared.events.common import Subject
from shared.subject_vault import KeyShredded

CASE_CLOSED = "gardien.erasure.case.closed"
PURGE_PREFIX = "ret:"


async def sealed_subject(
    uses: Deadlines, timer_id: str, subject: Subject | None
) -> dict[str, Any] | None:
    """``subject`` sealed for the timer, or None (no subject, or the clock was purged)."""
    if subject is None:
        return None
    try:
        return await uses.vault.seal(
            timer_id, subject.model_dump(mode="json", exclude_none=True), "subject"
        )
    except KeyShredded:
        return None  # the purge already erased this subject: keep no copy


async def case_closed(uses: Deadlines, event: CloudEvent) -> None:
    """A closed purge case shreds the subject its retention clock kept."""
    case_id = str(event.data.get("case_id", ""))
    if event.type != CASE_CLOSED or not case_id.startswith(PURGE_PREFIX):
        return
    timer_id = case_id.removeprefix(PURGE_PREFIX)
    with uses.runtime.span("deadlines.shred_subject") as span:
        span.set_attribute("gardien.timer_id", timer_id)
        destroyed = await uses.vault.destroy(timer_id, event.time)
        span.set_attribute("gardien.subject_key_destroyed", destroyed)
