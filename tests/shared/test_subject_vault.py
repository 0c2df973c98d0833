"""Subject keys on the embedded MongoDB server: seal, open, destroy for good."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.mongo import service_database
from shared.settings import Settings
from shared.subject_vault import KeyShredded, SubjectVault, is_sealed

pytestmark = pytest.mark.integration
NOW = datetime(2027, 3, 5, 12, tzinfo=UTC)


async def test_sealed_values_open_until_the_key_is_destroyed(
    settings: Settings, mongo_client: Any
) -> None:
    vault = SubjectVault(service_database(mongo_client, settings, "intake"))
    kid = f"request:R-{uuid.uuid4().hex[:6]}"
    ids = {"email": "Alice@Example.com", "customer_id": "C-1042"}
    sealed = await vault.seal(kid, ids, "subject", NOW)
    assert is_sealed(sealed) and "alice" not in json.dumps(sealed).lower()
    assert "C-1042" not in json.dumps(sealed)
    assert await vault.open(sealed, "subject") == ids
    with pytest.raises(ValueError, match="context"):
        await vault.open(sealed, "details")  # bound to where it is stored
    assert await vault.destroy(kid, NOW) is True
    assert await vault.destroy(kid, NOW) is False
    assert await vault.open(sealed, "subject") is None
    assert await vault.destroyed(kid)
    with pytest.raises(KeyShredded):
        await vault.seal(kid, ids, "subject", NOW)  # never recreated


async def test_a_key_destroyed_before_it_existed_is_never_created(
    settings: Settings, mongo_client: Any
) -> None:
    vault = SubjectVault(service_database(mongo_client, settings, "erasure"))
    kid = f"case:req:R-{uuid.uuid4().hex[:6]}"
    assert await vault.destroy(kid, NOW) is True
    with pytest.raises(KeyShredded):
        await vault.seal(kid, {"email": "a@b.c"}, "x", NOW)
    other = await vault.seal(kid + "-new", {"email": "a@b.c"}, "x", NOW)
    assert await vault.open(other, "x") == {"email": "a@b.c"}


async def test_replicas_creating_one_key_at_once_end_up_with_the_same_key(
    settings: Settings, mongo_client: Any
) -> None:
    db = service_database(mongo_client, settings, "deadlines")
    kid = f"retention:CTR-{uuid.uuid4().hex[:6]}:customer"
    replicas = [SubjectVault(db) for _ in range(4)]
    sealed = await asyncio.gather(
        *(r.seal(kid, {"n": i}, "subject") for i, r in enumerate(replicas))
    )
    reader = SubjectVault(db)
    assert [await reader.open(s, "subject") for s in sealed] == [{"n": i} for i in range(4)]


async def test_bytes_sealed_as_text_open_until_the_key_is_destroyed(
    settings: Settings, mongo_client: Any
) -> None:
    vault = SubjectVault(service_database(mongo_client, settings, "erasure"))
    kid = f"case:req:R-{uuid.uuid4().hex[:6]}"
    sealed = await vault.seal_bytes(kid, b"alice@example.org", "blob|upload:c|g|0", NOW)
    assert isinstance(sealed, str) and "alice" not in sealed
    assert await vault.open_bytes(kid, sealed, "blob|upload:c|g|0") == b"alice@example.org"
    with pytest.raises(ValueError, match="context"):
        await vault.open_bytes(kid, sealed, "blob|upload:c|g|1")  # moved: does not open
    await vault.destroy(kid, NOW)
    assert await SubjectVault(vault.keys.database).open_bytes(kid, sealed, "x") is None
    with pytest.raises(KeyShredded):
        await vault.seal_bytes(kid, b"more", "x", NOW)
