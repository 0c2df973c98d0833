"""The subject request history contract, run on the in-memory fake and on MongoDB."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.intake.memory import MemorySubjectHistory
from services.intake.repository import HistoryEntry, MongoSubjectHistory, SubjectHistory
from shared.mongo import service_database
from shared.settings import Settings

DAY = date(2027, 3, 5)


class HistoryContract:
    async def test_entries_are_recorded_once_and_found_by_any_pseudonym(
        self, repo: SubjectHistory
    ) -> None:
        entries = [
            HistoryEntry("h1", "R-1", "access", DAY),
            HistoryEntry("h2", "R-1", "access", DAY),
            HistoryEntry("h2", "R-2", "erasure", DAY),
            HistoryEntry("h3", "R-3", "access", DAY),
        ]
        await repo.record_many(entries)
        await repo.record_many([HistoryEntry("h1", "R-1", "erasure", date(2028, 1, 1)), entries[3]])
        found = await repo.of_subjects(["h1", "h2", "h9"])
        assert sorted(found, key=lambda e: (e.subject_hash, e.request_id)) == entries[:3]
        assert await repo.of_subjects([]) == []
        await repo.record_many([])


class TestMemoryHistory(HistoryContract):
    @pytest.fixture
    def repo(self) -> MemorySubjectHistory:
        return MemorySubjectHistory()


@pytest.mark.integration
class TestMongoHistory(HistoryContract):
    @pytest.fixture
    def repo(self, mongo_client: Any, settings: Settings) -> MongoSubjectHistory:
        return MongoSubjectHistory(service_database(mongo_client, settings, "intake"))
