"""Audit's repositories in memory: the fakes the use-case tests run on (same contracts).

Documents are deep-copied on the way in and out, so a caller's dict is never the stored one;
inserts stop at the first duplicate as MongoDB's ordered ``insert_many`` does.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from services.audit.memory_webhooks import MemoryDeliveries, MemoryWebhooks
from services.audit.repository import (
    Doc,
    PositionTaken,
    Repositories,
    Selection,
    about,
    chain_seq,
    lookups,
)


def _c(doc: Doc) -> Doc:
    return copy.deepcopy(doc)


def _selected(doc: Doc, s: Selection) -> bool:
    refs = doc.get("refs") or {}
    wanted = {"request_id": s.request_id, "case_id": s.case_id, "breach_id": s.breach_id}
    at = doc["recorded_at"]
    return (
        (s.ids is None or doc["_id"] in s.ids)
        and all(refs.get(k) == v for k, v in wanted.items() if v)
        and (not s.type or doc.get("type") == s.type)
        and (s.since is None or at >= s.since)
        and (s.before is None or at < s.before)
    )


@dataclass
class MemoryRecords:
    """Records by id, heads by chain, the subject-index entries by id."""

    docs: dict[str, Doc] = field(default_factory=dict)
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)
    index: dict[str, Doc] = field(default_factory=dict)

    async def head(self, chain: str) -> tuple[int, str] | None:
        seq, digest = self.heads.get(chain, (0, ""))
        for doc in self.docs.values():
            if doc.get("chain") == chain and int(doc["seq"]) > seq:
                seq, digest = int(doc["seq"]), str(doc["hash"])
        return (seq, digest) if seq else None

    async def all_heads(self) -> dict[str, tuple[int, str]]:
        return dict(self.heads)

    async def insert_records(self, records: list[Doc]) -> None:
        taken = {d["chain_seq"] for d in self.docs.values() if "chain_seq" in d}
        for record in records:
            if record["_id"] in self.docs or record.get("chain_seq") in taken:
                raise PositionTaken(f"record {record['_id']} or its position is taken")
            self.docs[record["_id"]] = _c(record)
            taken.add(record.get("chain_seq"))

    async def records_by_id(self, ids: list[str]) -> dict[str, Doc]:
        return {i: _c(self.docs[i]) for i in ids if i in self.docs}

    async def advance_many(self, heads: list[Doc]) -> None:
        for h in heads:
            if self.heads.get(h["_id"], (0, ""))[0] < int(h["seq"]):
                self.heads[h["_id"]] = (int(h["seq"]), str(h["hash"]))

    async def span(self, chain: str, first: int, last: int) -> list[Doc]:
        low, high = chain_seq(chain, first), chain_seq(chain, last)
        found = [d for d in self.docs.values() if low <= str(d.get("chain_seq", "")) <= high]
        return [_c(d) for d in sorted(found, key=lambda d: str(d["chain_seq"]))]

    async def insert_index(self, entries: list[Doc]) -> None:
        for entry in entries:
            self.index.setdefault(entry["_id"], _c(entry))

    async def records_of_subject(self, ref: str) -> list[str]:
        ids, aggregates = lookups([e for e in self.index.values() if e["ref"] == ref])
        for name, values in aggregates.items():
            named = [d for d in self.docs.values() if (d.get("refs") or {}).get(name) in values]
            ids |= about(ref, named, name)
        return sorted(ids)

    async def page(
        self, selection: Selection, after: tuple[datetime, str] | None, limit: int
    ) -> list[Doc]:
        found = sorted(
            (d for d in self.docs.values() if _selected(d, selection)),
            key=lambda d: (d["recorded_at"], d["_id"]),
        )
        if after is not None:
            found = [d for d in found if (d["recorded_at"], d["_id"]) > after]
        return [_c(d) for d in found[:limit]]

    async def naming(self, field: str, values: list[str]) -> list[Doc]:
        return [_c(d) for d in self.docs.values() if (d.get("refs") or {}).get(field) in values]


@dataclass
class MemoryKeys:
    """Subject keys, links and vault secrets in dicts."""

    keys: dict[str, Doc] = field(default_factory=dict)
    links: dict[str, Doc] = field(default_factory=dict)
    vault: dict[str, bytes] = field(default_factory=dict)

    async def secret(self, name: str) -> bytes:
        return self.vault.setdefault(name, secrets.token_bytes(32))

    async def drop_secret(self, name: str) -> None:
        self.vault.pop(name, None)

    async def subject_keys(self, ids: list[str]) -> dict[str, Doc]:
        return {i: _c(self.keys[i]) for i in ids if i in self.keys}

    async def insert_keys(self, docs: list[Doc]) -> bool:
        fresh = [d for d in docs if d["_id"] not in self.keys]
        for doc in fresh:
            self.keys[doc["_id"]] = _c(doc)
        return len(fresh) == len(docs)

    async def destroy_keys(self, ids: list[str], now: datetime, upto: int) -> int:
        live = [
            self.keys[i]
            for i in set(ids)
            if i in self.keys
            and self.keys[i].get("key") is not None
            and int(self.keys[i].get("gen", 1)) <= upto
        ]
        for doc in live:
            doc.update(key=None, destroyed_at=now.isoformat())
        return len(live)

    async def renew_key(self, kid: str, replaced: int, fresh: Doc) -> bool:
        doc = self.keys.get(kid)
        if doc is None or doc.get("key") is not None or int(doc.get("gen", 1)) != replaced:
            return False
        doc.update({k: v for k, v in _c(fresh).items() if k != "_id"})
        return True

    async def write_links(self, docs: list[Doc]) -> None:
        for d in docs:
            link = self.links.setdefault(
                d["_id"], {"_id": d["_id"], "key_id": d["key_id"], "gen": d["gen"], "refs": []}
            )
            link["refs"] += [r for r in d["refs"] if r not in link["refs"]]

    async def linked(self, names: list[str]) -> list[Doc]:
        return [_c(self.links[n]) for n in names if n in self.links]


@dataclass
class MemoryCheckpoints:
    docs: dict[str, Doc] = field(default_factory=dict)

    async def add(self, doc: Doc) -> None:
        self.docs.setdefault(doc["_id"], _c(doc))

    async def latest(self) -> dict[str, Doc]:
        latest: dict[str, Doc] = {}
        for d in sorted(self.docs.values(), key=lambda d: -int(d["seq"])):
            latest.setdefault(str(d["chain"]), _c(d))
        return latest

    async def page(self, after: str | None, limit: int | None) -> list[Doc]:
        found = [_c(self.docs[i]) for i in sorted(self.docs) if after is None or i > after]
        return found[:limit] if limit else found


def memory_repositories() -> Repositories:
    """Fresh in-memory repositories for one test."""
    return Repositories(
        MemoryRecords(), MemoryKeys(), MemoryCheckpoints(), MemoryWebhooks(), MemoryDeliveries()
    )
