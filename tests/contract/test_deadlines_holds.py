"""The contracts of deadlines' ``HoldRepository`` and ``Vault``: one suite each, run on the
in-memory fakes and on MongoDB (the embedded nx-27017 server)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.deadlines.memory import MemoryHolds, MemoryVault
from services.deadlines.repository import HoldRepository, MongoHolds, MongoVault, Vault
from shared.settings import Settings
from shared.subject_vault import KeyShredded, is_sealed

AT = datetime(2031, 7, 2, 8, tzinfo=UTC)


def hold(key: str, refs: list[str], **more: Any) -> dict[str, Any]:
    return {
        "_id": key, "matter": f"m-{key}", "subject_refs": refs, "scope_all_subjects": not refs,
        "categories": [], "opened_on": "2031-01-01", "released_on": None, "active": True, **more,
    }  # fmt: skip


class HoldContract:
    async def test_a_hold_is_recorded_once(self, holds: HoldRepository) -> None:
        await holds.save_many([hold("H1", ["r1"])], {})
        # A re-delivery keeps the first; the other holds of the write are stored all the same.
        await holds.save_many([hold("H1", ["other"]), hold("H2", [])], {})
        found = await holds.get_many(["H1", "H2", "nope"])
        assert sorted(found) == ["H1", "H2"] and found["H1"]["subject_refs"] == ["r1"]

    async def test_active_holds_by_subject_or_naming_none(self, holds: HoldRepository) -> None:
        await holds.save_many([hold("H1", ["r1"]), hold("H2", ["r2"]), hold("H3", [])], {})
        await holds.save_many([hold("H4", ["r1"])], {})
        await holds.save_many([], {"H4": "2031-02-01", "never": "2031-02-01"})
        assert sorted(h["_id"] for h in await holds.active(["r1", "r9"])) == ["H1", "H3"]
        assert [h["_id"] for h in await holds.active([])] == ["H3"]
        released = (await holds.get_many(["H4"]))["H4"]
        assert released["released_on"] == "2031-02-01" and not released["active"]
        assert [h["_id"] for h in await holds.listed(3)] == ["H1", "H2", "H3"]


class VaultContract:
    async def test_sealed_values_open_until_the_key_is_destroyed(self, vault: Vault) -> None:
        kid = f"retention:{uuid.uuid4().hex[:6]}:customer"
        subject = {"kind": "customer", "identifiers": {"email": "a@example.org"}}
        sealed = await vault.seal(kid, subject, "subject")
        assert is_sealed(sealed) and "a@example.org" not in str(sealed)
        assert await vault.open(sealed, "subject") == subject
        with pytest.raises(ValueError):
            await vault.open(sealed, "identifiers")  # bound to its context
        assert await vault.destroy(kid, AT) and not await vault.destroy(kid, AT)
        assert await vault.destroyed(kid) and await vault.open(sealed, "subject") is None
        with pytest.raises(KeyShredded):
            await vault.seal(kid, subject, "subject")  # never recreated

    async def test_a_batch_prepares_its_keys_and_destroys_them_together(self, vault: Vault) -> None:
        run = uuid.uuid4().hex[:6]
        kids, never = [f"retention:{run}-{i}:customer" for i in range(3)], f"retention:{run}-x"
        batch = vault.keys()
        await batch.prepare(kids, AT)
        sealed = [await batch.seal(kid, {"n": i}, "subject") for i, kid in enumerate(kids)]
        assert await vault.keys().destroy_many([*kids[:2], never], AT) == {*kids[:2], never}
        assert await vault.keys().destroy_many(kids[:1], AT) == set()  # destroyed already
        later = vault.keys()
        await later.prepare([*kids, never], None, create=False)
        assert [await later.open(s, "subject") for s in sealed] == [None, None, {"n": 2}]
        for kid in (kids[0], never):  # a tombstone, even of a key never created, stays one
            await later.prepare([kid], AT)
            with pytest.raises(KeyShredded):
                await later.seal(kid, {"n": 0}, "subject")


class TestMemoryHolds(HoldContract):
    @pytest.fixture
    def holds(self) -> HoldRepository:
        return MemoryHolds()


class TestMemoryVault(VaultContract):
    @pytest.fixture
    def vault(self) -> Vault:
        return MemoryVault()


def fresh_db(mongo_client: Any, settings: Settings) -> Any:
    return mongo_client[settings.database_name(f"dlct{uuid.uuid4().hex[:8]}")]


@pytest.mark.integration
class TestMongoHolds(HoldContract):
    @pytest.fixture
    def holds(self, mongo_client: Any, settings: Settings) -> HoldRepository:
        return MongoHolds(fresh_db(mongo_client, settings))


@pytest.mark.integration
class TestMongoVault(VaultContract):
    @pytest.fixture
    def vault(self, mongo_client: Any, settings: Settings) -> Vault:
        return MongoVault(fresh_db(mongo_client, settings))
