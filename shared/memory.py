"""The in-memory counterpart of ``shared.persistence.VersionedCollection``: versioned
documents with their outbox, for the fakes the use-case tests run on (same contracts).

Documents are copied on the way in and out; a save at a stale version is a lost race, as on
MongoDB; ``sent`` collects every relayed ``(event, key)`` in order.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from shared.events import CloudEvent
from shared.persistence import TOKEN, Change, Saved

Doc = dict[str, Any]


class MemoryVersioned:
    """Versioned documents in a dict, saved in bulk and relayed from memory."""

    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}
        self.sent: list[tuple[CloudEvent, str]] = []

    async def load_many(self, ids: Iterable[str]) -> dict[str, Doc]:
        return {i: copy.deepcopy(self.docs[i]) for i in sorted(set(ids)) if i in self.docs}

    async def save_many(self, changes: Sequence[Change]) -> Saved:
        saved, lost = [], []
        for c in changes:
            current = self.docs.get(c.doc_id)
            fresh = current is None and c.version is None
            if not fresh and (current is None or current.get("version") != c.version):
                lost.append(c.doc_id)
                continue
            body = {**copy.deepcopy(c.fields), TOKEN: c.token, "outbox": copy.deepcopy(c.outbox)}
            body["outbox_pending"] = bool(c.outbox)
            base = {"_id": c.doc_id} if current is None else current
            self.docs[c.doc_id] = {**base, **body, "version": (c.version or 0) + 1}
            saved.append(c)
        return Saved(saved, lost)

    async def relay(self, saved: Sequence[Change]) -> int:
        with_events = [c for c in saved if c.outbox]
        for c in with_events:
            self.sent += c.events
            doc = self.docs.get(c.doc_id)
            if doc is not None and doc.get(TOKEN) == c.token:
                doc.update(outbox=[], outbox_pending=False)
        return sum(len(c.events) for c in with_events)
