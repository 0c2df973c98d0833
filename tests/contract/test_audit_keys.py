"""One contract for audit's KeyRepository, run on the in-memory fake and on MongoDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.audit.memory import MemoryKeys
from services.audit.mongo import INDEXES, MongoKeys
from services.audit.repository import KeyRepository
from shared.mongo import service_database
from shared.settings import Settings

AT = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


def key(kid: str, gen: int = 1, material: str = "k1") -> dict[str, Any]:
    return {"_id": kid, "key": material, "gen": gen, "at": AT.isoformat()}


class KeyContract:
    @pytest.fixture
    def repo(self) -> KeyRepository:
        raise NotImplementedError

    async def test_a_secret_is_made_once(self, repo: KeyRepository) -> None:
        first = await repo.secret("s")
        assert len(first) == 32 and await repo.secret("s") == first
        await repo.drop_secret("s")
        assert await repo.secret("s") != first

    async def test_an_inserted_key_keeps_its_first_material(self, repo: KeyRepository) -> None:
        assert await repo.insert_keys([key("A"), key("B")]) is True
        assert await repo.insert_keys([key("A", material="other"), key("C")]) is False
        stored = await repo.subject_keys(["A", "C", "Z"])
        assert stored["A"]["key"] == "k1" and "C" in stored and "Z" not in stored

    async def test_destroy_stops_at_the_generation_bound(self, repo: KeyRepository) -> None:
        await repo.insert_keys([key("A"), key("B", gen=2)])
        assert await repo.destroy_keys(["A", "B", "Z"], AT, upto=1) == 1
        stored = await repo.subject_keys(["A", "B"])
        assert stored["A"]["key"] is None and stored["B"]["key"] == "k1"
        assert await repo.destroy_keys(["A"], AT, upto=1) == 0  # already destroyed

    async def test_a_destroyed_key_is_renewed_once(self, repo: KeyRepository) -> None:
        await repo.insert_keys([key("A")])
        assert await repo.renew_key("A", 1, key("A", 2, "k2")) is False  # still alive
        await repo.destroy_keys(["A"], AT, upto=1)
        assert await repo.renew_key("A", 1, key("A", 2, "k2")) is True
        assert await repo.renew_key("A", 1, key("A", 2, "k3")) is False  # taken
        assert (await repo.subject_keys(["A"]))["A"]["key"] == "k2"

    async def test_links_keep_their_first_key_and_grow(self, repo: KeyRepository) -> None:
        await repo.write_links([{"_id": "case:K", "key_id": "A", "gen": 1, "refs": ["r1"]}])
        await repo.write_links([{"_id": "case:K", "key_id": "B", "gen": 2, "refs": ["r2", "r1"]}])
        [link] = await repo.linked(["case:K", "case:none"])
        assert (link["key_id"], link["gen"], sorted(link["refs"])) == ("A", 1, ["r1", "r2"])


class TestMemoryKeys(KeyContract):
    @pytest.fixture
    def repo(self) -> KeyRepository:
        return MemoryKeys()


@pytest.mark.integration
class TestMongoKeys(KeyContract):
    @pytest.fixture
    async def repo(self, settings: Settings, mongo_client: Any) -> KeyRepository:
        db = service_database(mongo_client, settings, "audit")
        await INDEXES.apply(db)
        return MongoKeys(db)
