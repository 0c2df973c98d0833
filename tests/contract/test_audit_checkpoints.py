"""One contract for audit's CheckpointRepository, run on the in-memory fake and on MongoDB."""

from __future__ import annotations

from typing import Any

import pytest

from services.audit.memory import MemoryCheckpoints
from services.audit.mongo import MongoCheckpoints
from services.audit.repository import CheckpointRepository, chain_seq
from shared.mongo import service_database
from shared.settings import Settings


def cp(chain: str, seq: int, signature: str = "sig") -> dict[str, Any]:
    return {"_id": chain_seq(chain, seq), "chain": chain, "seq": seq, "signature": signature}


class CheckpointContract:
    @pytest.fixture
    def repo(self) -> CheckpointRepository:
        raise NotImplementedError

    async def test_a_head_signed_twice_is_kept_once(self, repo: CheckpointRepository) -> None:
        await repo.add(cp("a/0", 3))
        await repo.add(cp("a/0", 3, "again"))
        assert [d["signature"] for d in await repo.page(None, None)] == ["sig"]

    async def test_the_latest_of_each_chain(self, repo: CheckpointRepository) -> None:
        for chain, seq in (("a/0", 3), ("a/0", 12), ("b/1", 5), ("a/0", 7)):
            await repo.add(cp(chain, seq))
        latest = await repo.latest()
        assert {c: d["seq"] for c, d in latest.items()} == {"a/0": 12, "b/1": 5}

    async def test_pages_in_id_order(self, repo: CheckpointRepository) -> None:
        for chain, seq in (("b/1", 1), ("a/0", 2), ("a/0", 1)):
            await repo.add(cp(chain, seq))
        first = await repo.page(None, 2)
        assert [d["_id"] for d in first] == [chain_seq("a/0", 1), chain_seq("a/0", 2)]
        assert [d["_id"] for d in await repo.page(first[-1]["_id"], 2)] == [chain_seq("b/1", 1)]


class TestMemoryCheckpoints(CheckpointContract):
    @pytest.fixture
    def repo(self) -> CheckpointRepository:
        return MemoryCheckpoints()


@pytest.mark.integration
class TestMongoCheckpoints(CheckpointContract):
    @pytest.fixture
    def repo(self, settings: Settings, mongo_client: Any) -> CheckpointRepository:
        return MongoCheckpoints(service_database(mongo_client, settings, "audit"))
