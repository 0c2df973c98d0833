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
``insert_one`` for creation (a ``DuplicateKeyError`` means another replica created it),
strings only (no binary, no ObjectId outside ``_id``).
"""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.errors import GardienError

KEYS = "subject_keys"
SEALED = "sealed"  # the marker field of a sealed value


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
    """The subject keys of one service (its ``subject_keys`` collection)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.keys: AsyncCollection[dict[str, Any]] = db[KEYS]
        # Live keys read by this instance. Build one vault per operation (as the
        # repositories do), so a key destroyed by another replica is not used for long.
        self._live: dict[str, bytes] = {}

    async def _key(self, kid: str, now: datetime | None, create: bool) -> bytes | None:
        if kid in self._live:
            return self._live[kid]
        key = await self._read(kid, now, create)
        if key is not None:
            self._live[kid] = key
        return key

    async def _read(self, kid: str, now: datetime | None, create: bool) -> bytes | None:
        doc = await self.keys.find_one({"_id": kid})
        if doc is None and create:
            key = AESGCM.generate_key(256)
            try:
                await self.keys.insert_one({"_id": kid, "key": _b64(key), "created_at": now})
                return key
            except DuplicateKeyError:  # another replica created (or destroyed) it first
                doc = await self.keys.find_one({"_id": kid})
        if doc is None or not doc.get("key"):
            return None
        return base64.b64decode(str(doc["key"]))

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
        self._live.pop(kid, None)
        stamp = now.isoformat()  # instants written with $set come back as text on nx-27017
        for _ in range(3):
            doc = await self.keys.find_one({"_id": kid}, {"key": 1})
            if doc is not None:
                if not doc.get("key"):
                    return False
                await self.keys.update_one(
                    {"_id": kid}, {"$set": {"key": None, "destroyed_at": stamp}}
                )
                return True
            try:
                await self.keys.insert_one({"_id": kid, "key": None, "destroyed_at": stamp})
            except DuplicateKeyError:
                continue  # created meanwhile: destroy that one
            return True
        return False

    async def destroyed(self, kid: str) -> bool:
        """True once ``kid`` has been destroyed."""
        doc = await self.keys.find_one({"_id": kid})
        return doc is not None and not doc.get("key")
