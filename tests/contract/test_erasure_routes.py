"""One contract for erasure's RouteRepository, run on the in-memory fake and on MongoDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.erasure.memory import MemoryRoutes
from services.erasure.mongo import MongoRoutes
from services.erasure.repository import RouteRepository
from shared.mongo import service_database
from shared.settings import Settings

AT = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


class RouteContract:
    @pytest.fixture
    def repo(self) -> RouteRepository:
        raise NotImplementedError

    async def test_a_route_is_kept_and_replaced(self, repo: RouteRepository) -> None:
        assert await repo.all() == {}
        await repo.put("mailer-old", "mailer-new", ["ads"], AT)
        await repo.put("mailer-old", "mailer-new", ["ads"], AT)  # idempotent
        await repo.put("crm-old", "crm-new", [], AT)
        assert await repo.all() == {
            "mailer-old": {"new": "mailer-new", "categories": ["ads"]},
            "crm-old": {"new": "crm-new", "categories": []},
        }
        await repo.put("mailer-old", "mailer-2", ["ads", "tracking"], AT)
        assert (await repo.all())["mailer-old"] == {
            "new": "mailer-2",
            "categories": ["ads", "tracking"],
        }


class TestMemoryRoutes(RouteContract):
    @pytest.fixture
    def repo(self) -> RouteRepository:
        return MemoryRoutes()


@pytest.mark.integration
class TestMongoRoutes(RouteContract):
    @pytest.fixture
    def repo(self, settings: Settings, mongo_client: Any) -> RouteRepository:
        return MongoRoutes(service_database(mongo_client, settings, "erasure"))
