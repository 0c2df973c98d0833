"""Sealing the personal parts of a batch of records: keys and links read once, written once.

A batch works on a working set of subject keys and links: read with one ``$in`` query each
(or taken from the in-process cache), changed in memory as the records are sealed one after
another (a later record sees the key or link an earlier one created), then written in one
go by ``flush`` before any record is stored. A failed batch drops its working set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from services.audit import crypto, domain
from services.audit.cache import TtlCache
from services.audit.repository import KeyRepository
from shared.errors import TransientError
from shared.pseudonyms import Pseudonymiser

Doc = dict[str, Any]


def link_names(refs: dict[str, str]) -> list[str]:
    """The aggregates an event can be linked to a subject through (most specific first)."""
    return [f"{f.removesuffix('_id')}:{refs[f]}" for f in domain.LINKABLE if f in refs]


class Keyring:
    """The in-process cache of subject keys and links shared by every batch of a process."""

    def __init__(self, store: KeyRepository, ttl: float, size: int) -> None:
        self.store = store
        self.keys: TtlCache[Doc] = TtlCache(ttl, size)
        self.links: TtlCache[Doc] = TtlCache(ttl, size)
        self.epoch = 0  # moves on at each shredding: older batches no longer refill the cache
        self.creating: dict[str, Doc] = {}  # new keys not stored yet, shared by batches

    def batch(self) -> Sealer:
        """A working set for one batch."""
        return Sealer(self)

    def forget(self) -> None:
        """Drop every cached key and link (after shredding, or a concurrent writer)."""
        self.epoch += 1
        self.keys.clear()
        self.links.clear()


class Sealer:
    """Subject keys and links for one batch, read through the process's ``Keyring``."""

    def __init__(self, ring: Keyring) -> None:
        self.ring, self.epoch = ring, ring.epoch
        self._store = ring.store
        self.keys, self.links = ring.keys, ring.links
        self._keys: dict[str, Doc | None] = {}  # the batch's working set
        self._links: dict[str, Doc | None] = {}
        self._new_keys: dict[str, Doc] = {}
        self._renewed: dict[str, int] = {}  # kid -> the destroyed generation it replaces
        self._link_writes: dict[str, Doc] = {}

    async def begin(self, items: Sequence[tuple[Doc, dict[str, str]]], key: Pseudonymiser) -> None:
        """Load what sealing ``items`` (event data, refs) will read: two queries at most."""
        names = {n for _, refs in items for n in link_names(refs)}
        await self._load(self.links, self._links, names, self._store.linked)
        kids = {"unlinked"}
        for data, refs in items:
            kids.update(link_names(refs)[:1])  # a record naming no subject: its aggregate's key
            slots = [[key.ref(i) for i in s] for s in domain.subjects_in(data)]
            kids.update(domain.subject_key_id(s) for s in slots if s)
        kids.update(str(d["key_id"]) for d in self._links.values() if d and d.get("key_id"))
        await self._load(self.keys, self._keys, kids, self._key_docs)

    async def _key_docs(self, ids: list[str]) -> list[Doc]:
        return list((await self._store.subject_keys(ids)).values())

    @staticmethod
    async def _load(
        cache: TtlCache[Doc],
        work: dict[str, Doc | None],
        wanted: set[str],
        fetch: Callable[[list[str]], Awaitable[list[Doc]]],
    ) -> None:
        for name in wanted:
            fresh, value = cache.get(name)
            if fresh:
                work[name] = value
        missing = sorted(wanted - set(work))
        if missing:
            found = {str(d["_id"]): d for d in await fetch(missing)}
            for name in missing:
                work[name] = found.get(name)

    async def linked(self, names: list[str]) -> list[Doc]:
        """The link documents of ``names`` that exist (the batch's own included)."""
        wanted = set(names) - set(self._links)
        if wanted:
            await self._load(self.links, self._links, wanted, self._store.linked)
        return [doc for n in names if (doc := self._links.get(n)) is not None]

    async def key_state(self, kid: str) -> tuple[int, bool] | None:
        doc = await self._key(kid)
        return None if doc is None else (int(doc.get("gen", 1)), bool(doc.get("key")))

    async def _key(self, kid: str) -> Doc | None:
        if kid not in self._keys:
            await self._load(self.keys, self._keys, {kid}, self._key_docs)
        return self._keys[kid]

    def link(self, names: list[str], key_id: str, refs: list[str], gen: int) -> None:
        """Aggregates ``names`` concern subject ``key_id``; an aggregate keeps its first key."""
        for name in names:
            doc = self._links.get(name)
            known = set(doc.get("refs", [])) if doc else set()
            if doc is not None and set(refs) <= known:
                continue
            doc = doc or {"_id": name, "key_id": key_id, "gen": gen, "refs": []}
            doc = {**doc, "refs": sorted(known | set(refs))}
            self._links[name] = doc
            self._link_writes[name] = doc

    async def key_at(self, kid: str, gen: int, now: datetime) -> bytes | None:
        """Generation ``gen`` of key ``kid`` (created or renewed here), None if destroyed."""
        doc = await self._key(kid)
        current = int(doc.get("gen", 1)) if doc else 0
        if doc is not None and doc.get("key") and current == gen:
            return crypto.unb64(str(doc["key"]))
        fresh = {"_id": kid, "key": crypto.b64(crypto.new_key()), "gen": gen, "at": now.isoformat()}
        if doc is None and gen == 1:
            # A batch of another partition may be creating the same subject's key right now:
            # both use one material, so both inserts store the same key.
            fresh = self.ring.creating.setdefault(kid, fresh)
            self._new_keys[kid] = fresh
        elif doc is not None and not doc.get("key") and current + 1 == gen:
            self._renewed[kid] = current
        else:
            return None
        self._keys[kid] = fresh
        return crypto.unb64(str(fresh["key"]))

    async def _insert_keys(self, store: KeyRepository) -> None:
        """Insert the new keys; one already stored must be the very key this batch used."""
        mine = self._new_keys
        try:
            if await store.insert_keys(list(mine.values())):
                return
            stored = await store.subject_keys(sorted(mine))
            if any(stored.get(k, {}).get("key") != doc["key"] for k, doc in mine.items()):
                self.ring.forget()
                raise TransientError("a subject key was created by another writer") from None
        finally:
            for kid, doc in mine.items():
                if self.ring.creating.get(kid) is doc:
                    del self.ring.creating[kid]

    async def flush(self) -> None:
        """Write the batch's new keys and links (before its records); then cache them."""
        store = self._store
        if self._new_keys:
            await self._insert_keys(store)
        for kid, replaced in self._renewed.items():
            fresh = self._keys[kid]
            assert fresh is not None
            if not await store.renew_key(kid, replaced, fresh):
                self.ring.forget()
                raise TransientError(f"subject key {kid} was renewed by another writer")
        await store.write_links(list(self._link_writes.values()))
        if self.ring.epoch != self.epoch:
            return  # keys were destroyed meanwhile: what this batch read may be stale
        for kid, doc in self._keys.items():
            self.keys.put(kid, doc)
        for name, doc in self._links.items():
            self.links.put(name, doc)

    # Sealing one record (in offset order, against the working set) -------------------------

    async def seal(
        self,
        key: Pseudonymiser,
        record_id: str,
        data: dict[str, Any],
        refs: dict[str, str],
        now: datetime,
    ) -> tuple[list[str], list[Doc]]:
        """(subject refs, sealed personal parts) of one event's data."""
        # One entry per subject slot of the data, so a part's ``subject`` index finds its owner;
        # a slot naming nobody (a whole-system order) stays as an empty entry.
        slots = [[key.ref(i) for i in s] for s in domain.subjects_in(data)]
        subjects = [s for s in slots if s]
        names = link_names(refs)
        linked = await self.linked(names) if names else []
        all_refs = sorted(
            {r for s in subjects for r in s} | {str(r) for d in linked for r in d.get("refs", [])}
        )
        parts = domain.personal_parts(data)
        if not parts:  # nothing personal, hence no subject to link either
            return all_refs, []
        main, gen = await self._main_key(names, subjects, linked, refs, all_refs)
        sealed = []
        for part in parts:
            owner = slots[part.subject] if part.subject is not None else None
            kid = domain.subject_key_id(owner) if owner else main
            part_gen = gen if kid == main else await self._current_generation(kid)
            secret = await self.key_at(kid, part_gen, now)
            sealed.append(_sealed_part(record_id, part, kid, part_gen, secret))
        return all_refs, sealed

    async def _main_key(
        self,
        names: list[str],
        subjects: list[list[str]],
        linked: list[Doc],
        refs: dict[str, str],
        all_refs: list[str],
    ) -> tuple[str, int]:
        """The key of the event's main subject and the generation the event belongs to."""
        known = {str(d["_id"]): d for d in linked if d.get("key_id")}
        if subjects:
            main = domain.subject_key_id(subjects[0])
        elif known:
            main = next(str(known[n]["key_id"]) for n in names if n in known)
        else:  # no subject: the aggregate's own key, never renewed once destroyed
            main = names[0] if names else "unlinked"
            return main, await self._current_generation(main)
        bound = [int(d.get("gen", 1)) for d in known.values() if d["key_id"] == main]
        opens = any(f in refs for f in domain.RELATIONSHIPS)
        gen = domain.generation_for(await self.key_state(main), bound, bool(known), opens)
        if subjects and names:
            self.link(names, main, all_refs, gen)
        return main, gen

    async def _current_generation(self, kid: str) -> int:
        return domain.generation_for(await self.key_state(kid), [], False, False)


def _sealed_part(
    record_id: str, part: domain.Part, kid: str, gen: int, secret: bytes | None
) -> Doc:
    """One personal part encrypted under generation ``gen`` of ``kid``, if it lives."""
    if secret is None:  # that generation was shredded: the value is not kept at all
        return {"path": part.path, "kid": kid, "gen": gen, "shredded": True}
    aad = f"{record_id}|{part.path}|{kid}|{gen}"
    return {"path": part.path, "kid": kid, "gen": gen, **crypto.seal(secret, part.value, aad)}
