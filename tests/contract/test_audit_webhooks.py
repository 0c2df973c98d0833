"""One contract for audit's WebhookRepository, run on the in-memory fake and on MongoDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.audit.memory_webhooks import MemoryWebhooks
from services.audit.mongo import WEBHOOKS
from services.audit.mongo_webhooks import MongoWebhooks
from services.audit.repository import WebhookRepository
from shared.mongo import service_database
from shared.settings import Settings

AT = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


def sub(sub_id: str, state: str = "active") -> dict[str, Any]:
    return {"_id": sub_id, "url": "http://127.0.0.1/x", "state": state, "secret": {"ct": "s"}}


class WebhookContract:
    @pytest.fixture
    def repo(self) -> WebhookRepository:
        raise NotImplementedError

    async def test_listings_hide_the_secret(self, repo: WebhookRepository) -> None:
        await repo.add(sub("wh_b"))
        await repo.add(sub("wh_a", "disabled"))
        assert [d["_id"] for d in await repo.listed()] == ["wh_a", "wh_b"]
        assert [d["_id"] for d in await repo.listed(active_only=True)] == ["wh_b"]
        assert all("secret" not in d for d in await repo.listed())
        got = await repo.get("wh_a")
        assert got is not None and got["secret"] == {"ct": "s"}
        assert await repo.remove("wh_a") is True and await repo.remove("wh_a") is False
        assert await repo.get("wh_a") is None

    async def test_a_failure_run_starts_once_and_ends_on_success(
        self, repo: WebhookRepository
    ) -> None:
        await repo.add(sub("wh_a"))
        assert await repo.failed("wh_none", 1) is None
        await repo.failed("wh_a", 1000)
        second = await repo.failed("wh_a", 5000)
        assert second is not None
        assert (second["consecutive_failures"], second["failing_since"]) == (2, 1000)
        await repo.succeeded("wh_a")
        again = await repo.failed("wh_a", 9000)
        assert again is not None
        assert (again["consecutive_failures"], again["failing_since"]) == (1, 9000)

    async def test_disable_once_and_enable(self, repo: WebhookRepository) -> None:
        await repo.add(sub("wh_a"))
        await repo.failed("wh_a", 1000)
        assert await repo.disable("wh_a", AT) is True
        assert await repo.disable("wh_a", AT) is False
        await repo.enable("wh_a")
        got = await repo.get("wh_a")
        assert got is not None and got["state"] == "active"
        assert got["consecutive_failures"] == 0 and "failing_since" not in got

    async def test_failing_counts_the_active_ones(self, repo: WebhookRepository) -> None:
        await repo.add(sub("wh_a"))
        await repo.add(sub("wh_b"))
        await repo.add(sub("wh_c", "disabled"))
        await repo.failed("wh_a", 1)
        await repo.failed("wh_a", 2)
        assert await repo.failing() == {"wh_a": 2, "wh_b": 0}


class TestMemoryWebhooks(WebhookContract):
    @pytest.fixture
    def repo(self) -> WebhookRepository:
        return MemoryWebhooks()


@pytest.mark.integration
class TestMongoWebhooks(WebhookContract):
    @pytest.fixture
    def repo(self, settings: Settings, mongo_client: Any) -> WebhookRepository:
        return MongoWebhooks(service_database(mongo_client, settings, "audit")[WEBHOOKS])
