"""Per-subject keys in a service's own database: seal, open, and destroy (crypto-shredding).

A service that must keep a subject's identifiers for a while (to send erasure commands, to
emit purge work when a retention period ends) keeps them sealed with AES-256-GCM under a key
of that subject's relationship (a request, a case, a retention clock), in the collection
``subject_keys`` of its own database. When the relationship ends (the erasure case closed)
the key is destroyed: every copy of the data it sealed, backups included, is then noise.

A destroyed key is never recreated: its document stays as a tombstone (``destroyed_at``,
no key material), and sealing under it fails with ``KeyShredded``. A genuinely new
relationship (a new request, a new contract) has a new key id and so a new key.

Shapes chosen for the embedded nx-27017 server as for MongoDB: one document per key,
reads by ``_id`` with ``$in``, creation with ``insert_many(ordered=False)`` (a duplicate-key
error means another replica created or destroyed that key first: it is read again),
strings only (no binary, no ObjectId outside ``_id``), and tombstone instants written with
``$set`` as ISO text (a datetime set that way comes back as text on nx-27017). nx-27017
applies an ``insert_many`` one document at a time; one command per batch still saves the
round trips.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from shared.errors import GardienError, TransientError

KEYS = "subject_keys"
SEALED = "sealed"  # the marker field of a sealed value
DUPLICATE_KEY = 11000


class KeyShredded(GardienError):
    """The key was destroyed: nothing can be sealed under it any more."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def seal_with(key: bytes, kid: str, data: bytes, aad: str) -> str:
    """``data`` sealed under ``key`` as text: base64 of nonce + ciphertext, bound to ``aad``."""
    nonce = os.urandom(12)
    return _b64(nonce + AESGCM(key).encrypt(nonce, data, f"{kid}|{aad}".encode()))


def open_with(key: bytes, kid: str, sealed: str, aad: str) -> bytes:
    """The bytes ``seal_with`` sealed; ValueError when they do not match their context."""
    raw = base64.b64decode(sealed)
    try:
        return AESGCM(key).decrypt(raw[:12], raw[12:], f"{kid}|{aad}".encode())
    except InvalidTag:
        raise ValueError(f"sealed bytes under {kid} do not match their context") from None


def is_sealed(value: Any) -> bool:
    """True for a value ``SubjectVault.seal`` produced."""
    return isinstance(value, dict) and value.get(SEALED) == 1 and "kid" in value


class SubjectVault:
    """The subject keys of one service (its ``subject_keys`` collection).

    A batch reads its keys in one go: ``prepare`` (one ``$in`` read, one ``insert_many`` of
    the new keys) before sealing, ``destroy_many`` (one read, one write per kind) when its
    relationships end. A key not prepared is read on first use, one round trip each.
    """

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.keys: AsyncCollection[dict[str, Any]] = db[KEYS]
        # Keys read by this instance: live ones, destroyed ones (tombstones), and ones read
        # as never created. Build one vault per operation or batch (as the repositories
        # do), so a key destroyed by another replica is not used for long.
        self._live: dict[str, bytes] = {}
        self._gone: set[str] = set()
        self._absent: set[str] = set()

    async def prepare(self, kids: Iterable[str], now: datetime | None, create: bool = True) -> None:
        """Read the keys of ``kids`` in one go; create the missing ones (``create``) in one.

        Destroyed keys stay destroyed (sealing under them raises ``KeyShredded``). A key
        another replica created or destroyed meanwhile is read once more, in one ``$in``.
        """
        wanted = sorted(set(kids) - self._live.keys() - self._gone)
        if not create:
            wanted = [k for k in wanted if k not in self._absent]
        if not wanted:
            return
        missing = self._note(await self._find(wanted), wanted)
        if not create or not missing:
            self._absent.update(missing)
            return
        created = {k: AESGCM.generate_key(256) for k in missing}
        docs = [{"_id": k, "key": _b64(key), "created_at": now} for k, key in created.items()]
        lost = await _insert_new(self.keys, docs)
        self._live.update({k: key for k, key in created.items() if k not in lost})
        self._absent.difference_update(created)
        if lost:  # another replica created (or destroyed) them first
            self._absent.update(self._note(await self._find(sorted(lost)), sorted(lost)))

    async def _find(self, kids: list[str]) -> dict[str, dict[str, Any]]:
        return {str(d["_id"]): d async for d in self.keys.find({"_id": {"$in": kids}})}

    def _note(self, found: dict[str, dict[str, Any]], wanted: list[str]) -> list[str]:
        """Cache what ``found`` says of ``wanted``; the kids it does not have."""
        for kid, doc in found.items():
            if doc.get("key"):
                self._live[kid] = base64.b64decode(str(doc["key"]))
            else:
                self._gone.add(kid)
        return [k for k in wanted if k not in found]

    async def _key(self, kid: str, now: datetime | None, create: bool) -> bytes | None:
        await self.prepare([kid], now, create)
        return self._live.get(kid)

    async def seal(
        self, kid: str, value: Any, aad: str, now: datetime | None = None
    ) -> dict[str, Any]:
        """``value`` (JSON) encrypted under key ``kid``, created if new; bound to ``aad``."""
        key = await self._key(kid, now, create=True)
        if key is None:
            raise KeyShredded(f"the subject key {kid} was destroyed")
        nonce = os.urandom(12)
        plain = json.dumps(value, separators=(",", ":"), default=str).encode()
        blob = AESGCM(key).encrypt(nonce, plain, f"{kid}|{aad}".encode())
        return {SEALED: 1, "kid": kid, "n": _b64(nonce), "c": _b64(blob)}

    async def open(self, sealed: dict[str, Any], aad: str) -> Any | None:
        """The value sealed in ``sealed``, or None once its key is destroyed."""
        kid = str(sealed["kid"])
        key = await self._key(kid, None, create=False)
        if key is None:
            return None
        nonce, blob = base64.b64decode(sealed["n"]), base64.b64decode(sealed["c"])
        try:
            plain = AESGCM(key).decrypt(nonce, blob, f"{kid}|{aad}".encode())
        except InvalidTag:
            raise ValueError(f"sealed value under {kid} does not match its context") from None
        return json.loads(plain)

    async def seal_bytes(self, kid: str, data: bytes, aad: str, now: datetime | None) -> str:
        """``data`` encrypted under key ``kid`` (created if new) as text, bound to ``aad``.

        What the blob store stores per chunk: one string, no binary (nx-27017).
        """
        key = await self._key(kid, now, create=True)
        if key is None:
            raise KeyShredded(f"the subject key {kid} was destroyed")
        return seal_with(key, kid, data, aad)

    async def open_bytes(self, kid: str, sealed: str, aad: str) -> bytes | None:
        """The bytes ``seal_bytes`` sealed, or None once key ``kid`` is destroyed."""
        key = await self._key(kid, None, create=False)
        return None if key is None else open_with(key, kid, sealed, aad)

    async def destroy(self, kid: str, now: datetime) -> bool:
        """Destroy key ``kid`` for good (a tombstone stays); False if it was destroyed already.

        Destroying a key that never existed leaves a tombstone too, so a late first write
        for an erased relationship cannot create it afterwards.
        """
        return kid in await self.destroy_many([kid], now)

    async def destroy_many(self, kids: Iterable[str], now: datetime) -> set[str]:
        """Destroy every key of ``kids`` for good (tombstones stay); those destroyed now.

        One read, then one update of the existing keys and one insert of tombstones for
        the never created ones. A tombstone refused as a duplicate means the key was
        created meanwhile: it is destroyed too, in the next round.
        """
        wanted, destroyed = sorted(set(kids)), set[str]()
        for kid in wanted:
            self._live.pop(kid, None)
        self._gone.update(wanted)
        self._absent.difference_update(wanted)
        stamp = now.isoformat()  # instants written with $set come back as text on nx-27017
        for _ in range(3):
            if not wanted:
                break
            found = await self._find(wanted)
            live = [k for k in wanted if found.get(k, {}).get("key")]
            if live:
                tomb = {"$set": {"key": None, "destroyed_at": stamp}}
                await self.keys.update_many({"_id": {"$in": live}}, tomb)
            docs = [
                {"_id": k, "key": None, "destroyed_at": stamp} for k in wanted if k not in found
            ]
            lost = await _insert_new(self.keys, docs) if docs else set()
            destroyed |= {*live, *(str(d["_id"]) for d in docs if d["_id"] not in lost)}
            wanted = sorted(lost)  # created meanwhile: destroy those
        return destroyed

    async def destroyed(self, kid: str) -> bool:
        """True once ``kid`` has been destroyed."""
        doc = await self.keys.find_one({"_id": kid})
        return doc is not None and not doc.get("key")


async def _insert_new(
    keys: AsyncCollection[dict[str, Any]], docs: list[dict[str, Any]]
) -> set[str]:
    """Insert ``docs`` in one ``insert_many``; the ids refused as already there."""
    try:
        await keys.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise TransientError("subject keys insert refused") from exc
        return {str(docs[int(e["index"])]["_id"]) for e in errors}
    return set()
