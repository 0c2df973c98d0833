"""API keys: hashed at rest, scoped, refused clearly."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from shared.auth import KeyStore, Scope, require


def app_with(store: KeyStore) -> FastAPI:
    app = FastAPI()
    app.state.keys = store

    @app.get("/audit", dependencies=[require(Scope.AUDIT_READ)])
    async def audit() -> dict[str, str]:
        return {"ok": "yes"}

    return app


async def call(app: FastAPI, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/audit", headers=headers)


def test_only_the_hash_is_stored(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key = store.create("dpo", ["audit:read"])
    text = (tmp_path / "keys.json").read_text()
    assert key not in text and key.split("_")[-1] not in text
    assert store.authenticate(key) is not None
    assert store.authenticate(key + "x") is None
    assert (tmp_path / "keys.json").stat().st_mode & 0o077 == 0


def test_unknown_scope_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown scope"):
        KeyStore(tmp_path / "k.json").create("x", ["audit:write"])


async def test_scopes_are_enforced(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    reader, writer, admin = (
        store.create(n, s)
        for n, s in (("r", ["audit:read"]), ("w", ["intake:write"]), ("a", ["admin"]))
    )
    app = app_with(store)
    assert (await call(app, {"X-API-Key": reader})).status_code == 200
    assert (await call(app, {"Authorization": f"Bearer {admin}"})).status_code == 200
    forbidden = await call(app, {"X-API-Key": writer})
    assert forbidden.status_code == 403 and "audit:read" in forbidden.json()["detail"]
    assert (await call(app, {})).status_code == 401
    assert (await call(app, {"X-API-Key": "gdn_nope_nope"})).status_code == 401


def test_keys_are_listed_without_secrets_and_revoked_keys_are_refused(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key = store.create("dpo", ["audit:read"])
    other = store.create("ops", ["admin"])
    listed = {k.name: k for k in store.listing()}
    assert set(listed) == {"dpo", "ops"} and listed["dpo"].revoked_at is None
    revoked = store.revoke("dpo")
    assert revoked.revoked_at is not None
    # Another process's store sees the revocation too (re-read on change).
    assert KeyStore(tmp_path / "keys.json").authenticate(key) is None
    assert store.authenticate(key) is None
    assert store.authenticate(other) is not None
    assert store.revoke(revoked.key_id).revoked_at == revoked.revoked_at  # idempotent


def test_revoking_an_unknown_or_ambiguous_key_says_why(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    store.create("twin", ["admin"])
    store.create("twin", ["admin"])
    with pytest.raises(KeyError, match="2 keys"):
        store.revoke("twin")
    with pytest.raises(KeyError, match="no key"):
        store.revoke("nobody")
