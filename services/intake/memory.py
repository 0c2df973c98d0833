"""In-memory repositories with the behaviour of the MongoDB ones (tests/contract/test_intake_*)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.intake.repository import Doc, HistoryEntry, KeyRing
from shared.events import CloudEvent
from shared.memory import MemoryVersioned
from shared.subject_vault import SEALED, KeyShredded


class MemoryRequests(MemoryVersioned):
    """Requests in a dict; ``sent`` holds every relayed ``(event, key)`` in order."""

    async def relay_pending(self) -> int:
        sent = 0
        for doc in self.docs.values():
            for entry in doc.get("outbox") or []:
                self.sent.append((CloudEvent.model_validate(entry["event"]), entry["key"]))
                sent += 1
            doc.update(outbox=[], outbox_pending=False)
        return sent

    async def outbox_backlog(self, cap: int) -> int:
        pending = [d for d in self.docs.values() if d.get("outbox_pending")][:cap]
        return sum(len(d.get("outbox") or []) for d in pending)

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
