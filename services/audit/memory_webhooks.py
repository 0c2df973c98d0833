"""Webhook subscriptions and deliveries in memory (the fakes of ``mongo_webhooks``)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime

from services.audit.repository import DELIVERY_STATES, Doc


def _shown(doc: Doc) -> Doc:
    return {k: copy.deepcopy(v) for k, v in doc.items() if k != "secret"}


@dataclass
class MemoryWebhooks:
    docs: dict[str, Doc] = field(default_factory=dict)

    async def add(self, doc: Doc) -> None:
        if doc["_id"] in self.docs:
            raise ValueError(f"webhook {doc['_id']} exists")
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    async def get(self, sub_id: str) -> Doc | None:
        doc = self.docs.get(sub_id)
        return copy.deepcopy(doc) if doc is not None else None

    async def listed(self, *, active_only: bool = False) -> list[Doc]:
        chosen = [self.docs[i] for i in sorted(self.docs)]
        return [_shown(d) for d in chosen if not active_only or d.get("state") == "active"]

    async def remove(self, sub_id: str) -> bool:
        return self.docs.pop(sub_id, None) is not None

    async def enable(self, sub_id: str) -> None:
        if (doc := self.docs.get(sub_id)) is not None:
            doc.update(state="active", consecutive_failures=0)
            doc.pop("failing_since", None)

    async def succeeded(self, sub_id: str) -> None:
        if (doc := self.docs.get(sub_id)) is not None:
            doc["consecutive_failures"] = 0
            doc.pop("failing_since", None)

    async def failed(self, sub_id: str, now_ms: int) -> Doc | None:
        doc = self.docs.get(sub_id)
        if doc is None:
            return None
        doc["consecutive_failures"] = int(doc.get("consecutive_failures", 0)) + 1
        doc.setdefault("failing_since", now_ms)
        return copy.deepcopy(doc)

    async def disable(self, sub_id: str, at: datetime) -> bool:
        doc = self.docs.get(sub_id)
        if doc is None or doc.get("state") != "active":
            return False
        doc.update(state="disabled", disabled_at=at.isoformat())
        return True

    async def failing(self) -> dict[str, int]:
        active = {i: d for i, d in self.docs.items() if d.get("state") == "active"}
        return {i: int(d.get("consecutive_failures") or 0) for i, d in active.items()}


@dataclass
class MemoryDeliveries:
    docs: dict[str, Doc] = field(default_factory=dict)
    attempts: list[Doc] = field(default_factory=list)

    async def enqueue(self, docs: list[Doc]) -> None:
        for doc in docs:
            self.docs.setdefault(doc["_id"], copy.deepcopy(doc))

    async def claim(self, now_ms: int, lease_ms: int) -> Doc | None:
        due = [d for d in self.docs.values() if "next_at" in d and int(d["next_at"]) <= now_ms]
        if not due:
            return None
        first = min(due, key=lambda d: int(d["next_at"]))
        first["next_at"] = now_ms + lease_ms
        return copy.deepcopy(first)

    async def delivered(self, delivery_id: str, status: int) -> None:
        if (doc := self.docs.get(delivery_id)) is not None:
            doc.update(state="delivered", last_status=status)
            doc["attempts"] = int(doc.get("attempts", 0)) + 1
            doc.pop("next_at", None)

    async def failed(
        self, delivery_id: str, attempts: int, status: int | None, error: str, next_at: int | None
    ) -> None:
        if (doc := self.docs.get(delivery_id)) is None:
            return
        doc.update(attempts=attempts, last_status=status, last_error=error[:300])
        if next_at is None:
            doc["state"] = "failed"
            doc.pop("next_at", None)
        else:
            doc["next_at"] = next_at

    async def close(self, delivery_id: str, state: str, why: str) -> None:
        if (doc := self.docs.get(delivery_id)) is not None:
            doc.update(state=state, last_error=why)
            doc.pop("next_at", None)

    async def replay(self, delivery_id: str, sub_id: str, now_ms: int) -> bool:
        doc = self.docs.get(delivery_id)
        if doc is None or doc.get("sub_id") != sub_id:
            return False
        doc.update(state="pending", next_at=now_ms, replays=int(doc.get("replays", 0)) + 1)
        return True

    async def of_subscription(self, sub_id: str) -> list[Doc]:
        return [copy.deepcopy(d) for d in self.docs.values() if d.get("sub_id") == sub_id]

    async def log_attempt(self, doc: Doc) -> None:
        self.attempts.append(copy.deepcopy(doc))

    async def attempts_of(self, delivery_ids: list[str]) -> list[Doc]:
        return [copy.deepcopy(a) for a in self.attempts if a["delivery_id"] in delivery_ids]

    async def states(self, cap: int) -> dict[str, int]:
        counts = {s: sum(d.get("state") == s for d in self.docs.values()) for s in DELIVERY_STATES}
        return {s: min(n, max(cap, 0)) for s, n in counts.items()}
