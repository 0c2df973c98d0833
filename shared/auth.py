"""API keys with scopes for the HTTP routes; only SHA-256 hashes are kept at rest."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from shared.files import write_atomic

KEY_PREFIX = "gdn_"


class Scope(StrEnum):
    INTAKE_WRITE = "intake:write"
    INTAKE_READ = "intake:read"
    AUDIT_READ = "audit:read"
    AUDIT_REVEAL = "audit:reveal"
    WEBHOOKS_ADMIN = "webhooks:admin"
    BREACHES_WRITE = "breaches:write"  # breach follow-ups (HTTP actions)
    HOLDS_WRITE = "holds:write"  # legal holds placed and released
    ERASURE_WRITE = "erasure:write"  # manual erasure steps, processor deletion certificates
    PACKAGES_READ = "packages:read"  # download access packages, issue a subject's link
    ADMIN = "admin"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class StoredKey:
    """One key as kept at rest: its name, hash and scopes, never the key itself."""

    key_id: str
    name: str
    sha256: str
    scopes: frozenset[str]
    created_at: str | None = None
    revoked_at: str | None = None


class KeyStore:
    """Keys in a JSON file, re-read when the file changes so new keys need no restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: float | None = None
        self._keys: dict[str, StoredKey] = {}

    def _load(self) -> None:
        try:
            stamp = self.path.stat().st_mtime
        except FileNotFoundError:
            self._keys, self._stamp = {}, None
            return
        if stamp == self._stamp:
            return
        raw = json.loads(self.path.read_text() or "{}")
        self._keys = {k["id"]: _stored(k) for k in raw.get("keys", [])}
        self._stamp = stamp

    def authenticate(self, presented: str) -> StoredKey | None:
        """The stored key matching ``presented``, compared in constant time."""
        self._load()
        key_id = presented.removeprefix(KEY_PREFIX).split("_", 1)[0]
        stored = self._keys.get(key_id)
        if stored is None or not hmac.compare_digest(stored.sha256, _digest(presented)):
            return None
        return None if stored.revoked_at else stored

    def create(self, name: str, scopes: list[str]) -> str:
        """Add a key and return it; this is the only time it is ever shown."""
        unknown = set(scopes) - {s.value for s in Scope}
        if unknown:
            raise ValueError(f"unknown scope(s): {', '.join(sorted(unknown))}")
        key_id = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        raw = self._raw()
        raw.setdefault("keys", []).append(
            {
                "id": key_id,
                "name": name,
                "sha256": _digest(key),
                "scopes": sorted(scopes),
                "created_at": datetime.now(UTC).isoformat(),
            }
        )
        self._write(raw)
        return key

    def listing(self) -> list[StoredKey]:
        """Every key ever created, revoked ones included, oldest first."""
        self._stamp = None
        self._load()
        return list(self._keys.values())

    def revoke(self, ref: str) -> StoredKey:
        """Revoke the one key whose id or name is ``ref``; KeyError when none or several match."""
        raw = self._raw()
        found = [k for k in raw.get("keys", []) if ref in (k["id"], k["name"])]
        if len(found) != 1:
            why = "no key" if not found else f"{len(found)} keys"
            raise KeyError(f"{why} with id or name {ref!r}; see `gardien apikey list`")
        if not found[0].get("revoked_at"):
            found[0]["revoked_at"] = datetime.now(UTC).isoformat()
            self._write(raw)
        return _stored(found[0])

    def _raw(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        raw: dict[str, Any] = json.loads(self.path.read_text() or "{}")
        return raw

    def _write(self, raw: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(raw, indent=2), mode=0o600)
        self._stamp = None

    def is_empty(self) -> bool:
        self._load()
        return not self._keys


def _stored(k: dict[str, Any]) -> StoredKey:
    return StoredKey(
        k["id"],
        k["name"],
        k["sha256"],
        frozenset(k["scopes"]),
        k.get("created_at"),
        k.get("revoked_at"),
    )


_header = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    description="A Gardien API key (`gardien apikey create`).",
    auto_error=False,
)
_bearer = HTTPBearer(
    scheme_name="Bearer",
    description="The same API key as a bearer token: `Authorization: Bearer gdn_...`.",
    auto_error=False,
)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="gardien"'}


def require(scope: Scope) -> Any:
    """FastAPI dependency: a valid key holding ``scope`` (or ``admin``), else 401/403.

    The key comes as ``X-API-Key`` or ``Authorization: Bearer``; OpenAPI declares both
    schemes on every route that depends on this, either one sufficing.
    """

    async def check(
        request: Request,
        key: Annotated[str | None, Depends(_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> StoredKey:
        if not key and bearer is not None:
            key = bearer.credentials.strip()
        if not key:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "missing API key (X-API-Key)", CHALLENGE
            )
        store: KeyStore = request.app.state.keys
        stored = store.authenticate(key)
        if stored is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "unknown or revoked API key", CHALLENGE
            )
        if scope.value not in stored.scopes and Scope.ADMIN.value not in stored.scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this key lacks scope {scope.value}")
        return stored

    return Depends(check)
