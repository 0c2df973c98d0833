"""In-memory repositories with the behaviour of the MongoDB ones (tests/contract/test_intake_*)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.intake.repository import Doc, HistoryEntry, KeyRing
from shared.events import CloudEvent
from shared.persistence import TOKEN, Change, Saved
from shared.subject_vault import SEALED, KeyShredded


class MemoryRequests:
    """Requests in a dict; ``sent`` holds every relayed ``(event, key)`` in order."""

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
            body = {**copy.deepcopy(c.fields), TOKEN: c.token, "outbox": list(c.outbox)}
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

    async def relay_pending(self) -> int:
        sent = 0
        for doc in self.docs.values():
            for entry in doc.get("outbox") or []:
                self.sent.append((CloudEvent.model_validate(entry["event"]), entry["key"]))
                sent += 1
            doc.update(outbox=[], outbox_pending=False)
        return sent

    async def get(self, request_id: str) -> Doc | None:
        doc = self.docs.get(request_id)
        return copy.deepcopy(doc) if doc is not None else None

    async def page(self, status: str | None, after: str | None, limit: int) -> list[Doc]:
        ids = sorted(i for i in self.docs if after is None or i > after)
        docs = [self.docs[i] for i in ids if status is None or self.docs[i]["status"] == status]
        hidden = ("outbox", "applied_events")
        return [{k: v for k, v in d.items() if k not in hidden} for d in docs[:limit]]


class MemorySubjectHistory:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], HistoryEntry] = {}

    async def record_many(self, entries: Sequence[HistoryEntry]) -> None:
        for e in entries:
            self.entries.setdefault((e.subject_hash, e.request_id), e)

    async def of_subjects(self, hashes: Iterable[str]) -> list[HistoryEntry]:
        wanted = set(hashes)
        return [e for (h, _), e in self.entries.items() if h in wanted]


@dataclass
class MemoryRing:
    """Seals by wrapping (no cryptography: a fake); a destroyed key opens nothing."""

    keys: MemorySubjectKeys

    async def seal(self, kid: str, value: Any, aad: str, now: datetime | None = None) -> Doc:
        if kid in self.keys.tombstones:
            raise KeyShredded(f"the subject key {kid} was destroyed")
        self.keys.live.add(kid)
        return {SEALED: 1, "kid": kid, "aad": aad, "value": copy.deepcopy(value)}

    async def open(self, sealed: Doc, aad: str) -> Any | None:
        if sealed["kid"] in self.keys.tombstones:
            return None
        if sealed.get("aad") != aad:
            raise ValueError(f"sealed value under {sealed['kid']} does not match its context")
        return copy.deepcopy(sealed["value"])


@dataclass
class MemorySubjectKeys:
    live: set[str] = field(default_factory=set)
    tombstones: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)  # vault entries (retired ones go)

    async def retire_secret(self, name: str) -> bool:
        found = name in self.secrets
        self.secrets.discard(name)
        return found

    async def ring(self, new: Iterable[str], now: datetime) -> KeyRing:
        self.live |= {k for k in new if k not in self.tombstones}
        return MemoryRing(self)

    async def destroy_many(self, kids: Iterable[str], now: datetime) -> int:
        wanted = set(kids) - self.tombstones  # a key never created gets a tombstone too
        self.live -= wanted
        self.tombstones |= wanted
        return len(wanted)

    async def destroyed(self, kid: str) -> bool:
        return kid in self.tombstones
