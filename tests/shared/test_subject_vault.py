"""Subject keys on the embedded MongoDB server: seal, open, destroy for good."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from shared.mongo import service_database
from shared.settings import Settings
from shared.subject_vault import KeyShredded, SubjectVault, is_sealed

pytestmark = pytest.mark.integration
NOW = datetime(2027, 3, 5, 12, tzinfo=UTC)
Doc = dict[str, Any]


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


class Commands(monitoring.CommandListener):
    """The commands a client sends to one collection of one database (round trips)."""

    def __init__(self, collection: str = "subject_keys") -> None:
        self.names: list[str] = []
        self.db, self.collection = "", collection

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        if event.database_name == self.db and target == self.collection:
            self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None: ...

    def failed(self, event: monitoring.CommandFailedEvent) -> None: ...


@pytest.fixture
async def counted(settings: Settings) -> AsyncIterator[tuple[AsyncDatabase[Doc], Commands]]:
    listener = Commands()
    client: AsyncMongoClient[Doc] = AsyncMongoClient(
        settings.mongodb_uri, tz_aware=True, event_listeners=[listener]
    )
    db = service_database(client, settings, "erasure")
    listener.db = db.name
    try:
        yield db, listener
    finally:
        await client.close()


def kids_of(n: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"case:req:R-{run}-{i}" for i in range(n)]


async def test_preparing_a_batch_costs_a_read_and_an_insert_not_one_per_key(
    counted: tuple[AsyncDatabase[Doc], Commands],
) -> None:
    db, commands = counted
    vault, kids = SubjectVault(db), kids_of(50)
    await vault.prepare(kids, NOW)
    assert commands.names == ["find", "insert"]
    sealed = [await vault.seal(k, {"email": f"{k}@x.y"}, "subject") for k in kids]
    assert commands.names == ["find", "insert"]  # every seal used the prepared key
    commands.names.clear()
    again = SubjectVault(db)
    await again.prepare([*kids, *kids], NOW)  # existing keys read, not replaced
    assert commands.names == ["find"]
    assert [await again.open(s, "subject") for s in sealed] == [{"email": f"{k}@x.y"} for k in kids]
    assert commands.names == ["find"]


async def test_prepare_never_recreates_a_destroyed_key(
    counted: tuple[AsyncDatabase[Doc], Commands],
) -> None:
    db, commands = counted
    kids = kids_of(3)
    sealed = await SubjectVault(db).seal(kids[0], "x", "subject", NOW)
    assert await SubjectVault(db).destroy_many(kids[:2], NOW) == set(kids[:2])
    vault = SubjectVault(db)
    commands.names.clear()
    await vault.prepare(kids, NOW)
    assert commands.names == ["find", "insert"]  # only the third is created
    for kid in kids[:2]:
        with pytest.raises(KeyShredded):
            await vault.seal(kid, "x", "subject", NOW)
    assert await vault.open(sealed, "subject") is None
    assert commands.names == ["find", "insert"]  # the tombstones were read once
    assert await vault.seal(kids[2], "x", "subject")


async def test_destroying_a_batch_costs_a_read_and_a_write_per_kind(
    counted: tuple[AsyncDatabase[Doc], Commands],
) -> None:
    db, commands = counted
    live, gone, never = kids_of(20), kids_of(5), kids_of(20)
    vault = SubjectVault(db)
    await vault.prepare([*live, *gone], NOW)
    sealed = await vault.seal(live[0], "x", "subject")
    assert await vault.destroy_many(gone, NOW) == set(gone)
    commands.names.clear()
    destroyed = await vault.destroy_many([*live, *gone, *never, *live], NOW)
    assert destroyed == {*live, *never}  # the already destroyed ones are not counted
    assert sorted(commands.names) == ["find", "insert", "update"]
    fresh = SubjectVault(db)
    assert await fresh.open(sealed, "subject") is None
    assert all([await fresh.destroyed(k) for k in [*live, *gone, *never]])
    await fresh.prepare(never, NOW)  # a tombstone for never-created keys: no creation
    with pytest.raises(KeyShredded):
        await fresh.seal(never[0], "x", "subject")
    assert await SubjectVault(db).destroy_many([], NOW) == set()


async def test_racing_prepares_of_one_new_key_end_with_one_key_both_use(
    counted: tuple[AsyncDatabase[Doc], Commands],
) -> None:
    db, _ = counted
    kids = kids_of(8)
    replicas = [SubjectVault(db) for _ in range(4)]
    await asyncio.gather(*(r.prepare(kids, NOW) for r in replicas))
    sealed = [await r.seal(k, {"n": i}, "s") for i, r in enumerate(replicas) for k in kids]
    reader = SubjectVault(db)
    await reader.prepare(kids, NOW, create=False)
    assert [await reader.open(s, "s") for s in sealed] == [{"n": i} for i in range(4) for _ in kids]


async def test_a_destroy_racing_a_first_prepare_leaves_the_key_destroyed(
    counted: tuple[AsyncDatabase[Doc], Commands],
) -> None:
    db, _ = counted
    kids = kids_of(10)
    await asyncio.gather(
        SubjectVault(db).prepare(kids, NOW), SubjectVault(db).destroy_many(kids, NOW)
    )
    assert all([await SubjectVault(db).destroyed(k) for k in kids])
