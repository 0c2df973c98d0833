"""Legal holds in erasure: stored from ``gdpr.legal_holds.v1``, applied to open cases.

Erasure learns holds itself (its own consumer group; deadlines owns the topic and its dead
letters), so a purge or an erasure request reaching it while a hold is active never commands
the held categories, whatever the sender knew. Subject references are the shared keyed
pseudonyms (``runtime.pseudonyms``): a hold on ``Alice@Example.com`` covers a request for
``alice@example.com``. Pure rules: ``holds.py``; storage: ``HoldRepository``.
"""

from __future__ import annotations

from services.erasure import holds
from services.erasure.domain import Case, Effect
from services.erasure.usecases import Erasure, Item, Refusals
from shared.events.inbound import LegalHold


def hold_of(erasure: Erasure, data: LegalHold) -> holds.Hold:
    """The hold an event describes, its subjects as keyed references."""
    refs = {r for s in data.scope.subjects for r in erasure.refs(s.identifiers.present())}
    key = data.hold_id or data.matter
    return holds.Hold(key, data.matter, frozenset(refs), frozenset(data.scope.categories))


async def placed(erasure: Erasure, event_id: str, data: LegalHold) -> Refusals:
    """Record a hold; add it to the held parts of the open cases it also covers."""
    with erasure.span("erasure.hold_placed"):
        hold = await erasure.repos.holds.add(hold_of(erasure, data), data.at)
        ids = await erasure.repos.cases.open_for_subjects(sorted(hold.subject_refs))

        def step(case: Case) -> list[Effect] | None:
            return holds.placed(case, hold, erasure.registry)

        return await erasure.apply_steps([Item(i, event_id, step) for i in ids])


async def released(erasure: Erasure, event_id: str, data: LegalHold) -> Refusals:
    """Release a hold: decide its cases again and issue what nothing holds any more."""
    key = data.hold_id or data.matter
    with erasure.span("erasure.hold_released"):
        if not await erasure.repos.holds.release(key, data.at):
            return {}  # never placed here: deadlines, the topic's owner, refuses it
        ids = await erasure.repos.cases.open_held_by(key)

        def step(case: Case) -> list[Effect] | None:
            return holds.released(case, key, data.matter, erasure.clock.now())

        return await erasure.apply_steps([Item(i, event_id, step) for i in ids], reveal=True)
