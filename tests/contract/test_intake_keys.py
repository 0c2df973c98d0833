"""The subject keys contract (seal, open, shred), run on the in-memory fake and on MongoDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from services.intake.memory import MemorySubjectKeys
from services.intake.repository import MongoSubjectKeys, SubjectKeys
from shared.mongo import service_database
from shared.settings import Settings
from shared.subject_vault import KeyShredded

NOW = datetime(2027, 3, 5, tzinfo=UTC)


class KeysContract:
    async def test_a_ring_seals_under_new_keys_and_later_rings_open(
        self, repo: SubjectKeys
    ) -> None:
        ring = await repo.ring(["k1", "k2"], NOW)
        sealed = await ring.seal("k1", {"email": "a@b.c"}, "subject.identifiers", NOW)
        assert sealed["sealed"] == 1 and sealed["kid"] == "k1"
        again = await repo.ring(["k1"], NOW)  # an existing key is read, not replaced
        assert await again.open(sealed, "subject.identifiers") == {"email": "a@b.c"}
        with pytest.raises(ValueError, match="does not match"):
            await again.open(sealed, "details")

    async def test_destroyed_keys_open_nothing_and_seal_nothing(self, repo: SubjectKeys) -> None:
        ring = await repo.ring(["k1", "k2"], NOW)
        sealed = await ring.seal("k1", "x", "details", NOW)
        assert await repo.destroy_many(["k1", "never-made"], NOW) == 2
        assert await repo.destroy_many(["k1"], NOW) == 0  # already destroyed
        assert await repo.destroyed("k1") and await repo.destroyed("never-made")
        assert not await repo.destroyed("k2")
        later = await repo.ring(["k1", "never-made"], NOW)  # never recreated
        assert await later.open(sealed, "details") is None
        with pytest.raises(KeyShredded):
            await later.seal("never-made", "x", "details", NOW)
        assert await repo.destroy_many([], NOW) == 0

    async def test_one_destroy_many_of_live_missing_and_destroyed_keys(
        self, repo: SubjectKeys
    ) -> None:
        ring = await repo.ring(["live-1", "live-2", "gone"], NOW)
        sealed = await ring.seal("live-1", "x", "details", NOW)
        assert await repo.destroy_many(["gone"], NOW) == 1
        mixed = ["live-1", "live-2", "gone", "never-1", "never-2", "live-1"]
        assert await repo.destroy_many(mixed, NOW) == 4  # not the one destroyed before
        assert all([await repo.destroyed(k) for k in set(mixed)])
        later = await repo.ring(mixed, NOW)
        assert await later.open(sealed, "details") is None
        with pytest.raises(KeyShredded):
            await later.seal("never-2", "x", "details", NOW)

    async def test_racing_rings_of_one_new_key_end_with_one_key_both_use(
        self, repo: SubjectKeys
    ) -> None:
        rings = await asyncio.gather(*(repo.ring(["k-new", "k-other"], NOW) for _ in range(3)))
        sealed = [await r.seal("k-new", {"n": n}, "subject", NOW) for n, r in enumerate(rings)]
        reader = await repo.ring([], NOW)
        assert [await reader.open(s, "subject") for s in sealed] == [{"n": n} for n in range(3)]
        assert [await r.open(sealed[0], "subject") for r in rings] == [{"n": 0}] * 3

    async def test_a_retired_secret_is_forgotten_once(self, repo: SubjectKeys) -> None:
        await self.keep_secret(repo, "subject-hash")
        assert await repo.retire_secret("subject-hash") is True
        assert await repo.retire_secret("subject-hash") is False

    async def keep_secret(self, repo: Any, name: str) -> None:
        raise NotImplementedError


class TestMemoryKeys(KeysContract):
    @pytest.fixture
    def repo(self) -> MemorySubjectKeys:
        return MemorySubjectKeys()

    async def keep_secret(self, repo: Any, name: str) -> None:
        repo.secrets.add(name)


@pytest.mark.integration
class TestMongoKeys(KeysContract):
    @pytest.fixture
    def repo(self, mongo_client: Any, settings: Settings) -> MongoSubjectKeys:
        return MongoSubjectKeys(service_database(mongo_client, settings, "intake"))

    async def keep_secret(self, repo: Any, name: str) -> None:
        await repo.db["vault"].insert_one({"_id": name, "key": "old"})
