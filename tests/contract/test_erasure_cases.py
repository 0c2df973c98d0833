"""One contract for erasure's CaseRepository, run on the in-memory fake and on MongoDB."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from services.erasure import domain, messages
from services.erasure.app import ALL_INDEXES
from services.erasure.memory import MemoryCases
from services.erasure.mongo import MongoCases
from services.erasure.repository import CaseRepository, Write
from shared.mongo import service_database
from shared.settings import Settings
from tests.erasure.fakes import FakeBroker
from tests.erasure.test_domain import open_case
from tests.shared.test_subject_vault import Commands, Doc

NOW = datetime(2027, 3, 6, 9, 0, tzinfo=UTC)  # tests.erasure.test_domain.NOW
IDS = {"email": "a@example.org", "customer_id": "C-1"}


def new_case(case_id: str = "req:R-1") -> domain.Case:
    case = open_case({"category": "customer", "action": "erase", "ground": "Art 17(1)(b)"})
    return case.model_copy(update={"case_id": case_id})


def opened(case: domain.Case) -> Write:
    effects = domain.open_new(case, NOW, lambda _: {})
    case.revision += 1
    return Write(case, None, ["ev-open"], messages.events(case, effects, NOW))


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class Finds(Commands):
    """The filters of the ``find`` commands sent to erasure's cases."""

    def __init__(self) -> None:
        super().__init__("cases")
        self.filters: list[Doc] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        super().started(event)
        if self.names[-1:] == ["find"] and event.command_name == "find":
            self.filters.append(dict(event.command.get("filter") or {}))


class CaseContract:
    """Behaviour every CaseRepository has; subclasses give ``repo``."""

    @pytest.fixture
    def repo(self) -> CaseRepository:
        raise NotImplementedError

    async def test_a_new_case_is_stored_with_its_applied_event(self, repo: CaseRepository) -> None:
        saved = await repo.save_many([opened(new_case())])
        assert [c.doc_id for c in saved.saved] == ["req:R-1"] and saved.lost == []
        found = await repo.get_many(["req:R-1", "req:NONE"], reveal=True)
        assert list(found) == ["req:R-1"]
        stored = found["req:R-1"]
        assert stored.applied == ["ev-open"] and stored.case.version == 1
        assert stored.case.systems["crm"].identifiers == IDS
        assert stored.case.systems["crm"].attempts == 1 and stored.case.revision == 1

    async def test_a_second_insert_of_the_same_case_loses(self, repo: CaseRepository) -> None:
        await repo.save_many([opened(new_case())])
        again = await repo.save_many([opened(new_case())])
        assert again.saved == [] and again.lost == ["req:R-1"]

    async def test_an_update_from_a_stale_version_loses(self, repo: CaseRepository) -> None:
        await repo.save_many([opened(new_case())])
        first = (await repo.get_many(["req:R-1"]))["req:R-1"]
        second = (await repo.get_many(["req:R-1"]))["req:R-1"]
        domain.answer(first.case, "crm", "erased", NOW, lambda _: {})
        won = await repo.save_many([Write(first.case, first, ["ev-a"], [])])
        domain.answer(second.case, "crm", "not_found", NOW, lambda _: {})
        lost = await repo.save_many([Write(second.case, second, ["ev-b"], [])])
        assert [c.doc_id for c in won.saved] == ["req:R-1"] and lost.lost == ["req:R-1"]
        stored = (await repo.get_many(["req:R-1"], reveal=True))["req:R-1"]
        assert stored.case.systems["crm"].outcome == "erased"
        assert stored.applied == ["ev-open", "ev-a"] and stored.case.version == 2
        # The parts the answer did not touch are kept as they were (identifiers included).
        assert stored.case.systems["billing"].identifiers == {"customer_id": "C-1"}
        assert [p.attempts for p in stored.case.systems.values()] == [1, 1, 1]

    async def test_relay_publishes_from_memory_and_clears_the_outbox(
        self, repo: CaseRepository
    ) -> None:
        broker = FakeBroker()
        saved = await repo.save_many([opened(new_case())])
        assert (await repo.get_many(["req:R-1"]))["req:R-1"].outbox
        assert await repo.relay(broker.as_broker(), saved) == 4  # opened + 3 commands
        assert (await repo.get_many(["req:R-1"]))["req:R-1"].outbox == []
        [crm] = [e for e in broker.of_type(messages.COMMAND_ISSUED) if e["data"]["system"] == "crm"]
        assert crm["data"]["identifiers"] == IDS  # as sent: open
        assert await repo.relay_left(broker.as_broker()) == 0

    async def test_a_relay_never_clears_a_newer_writers_events(self, repo: CaseRepository) -> None:
        broker = FakeBroker()
        first = await repo.save_many([opened(new_case())])
        stored = (await repo.get_many(["req:R-1"]))["req:R-1"]
        effects = domain.answer(stored.case, "crm", "erased", NOW, lambda _: {}) or []
        stored.case.revision += 1
        later = messages.events(stored.case, effects, NOW)
        await repo.save_many([Write(stored.case, stored, ["ev-a"], later)])
        await repo.relay(broker.as_broker(), first)  # the older write's relay comes late
        left = (await repo.get_many(["req:R-1"]))["req:R-1"].outbox
        assert len(left) == 5  # 4 carried on unsent + the progressed event
        assert await repo.relay_left(broker.as_broker(), ["req:R-1"]) == 5
        assert (await repo.get_many(["req:R-1"]))["req:R-1"].outbox == []

    async def test_queries_find_due_processor_subject_and_held_cases(
        self, repo: CaseRepository
    ) -> None:
        due, later = new_case("req:DUE"), new_case("req:LATER")
        due.next_due_at, later.next_due_at = NOW, NOW + timedelta(hours=1)
        due.subject_refs, due.holds_pending = ["ref-1"], ["H1"]
        closed = new_case("req:CLOSED")
        closed.state, closed.subject_refs, closed.next_due_at = "closed", ["ref-1"], None
        await repo.save_many([Write(c, None, [], []) for c in (due, later, closed)])
        assert await repo.due(NOW, 10) == ["req:DUE"]
        assert sorted(await repo.due(NOW + timedelta(hours=2), 10)) == ["req:DUE", "req:LATER"]
        assert len(await repo.due(NOW + timedelta(hours=2), 1)) == 1
        assert await repo.open_for_subjects(["ref-1"]) == ["req:DUE"]
        assert sorted(await repo.open_for_subjects([])) == ["req:DUE", "req:LATER"]
        assert await repo.open_held_by("H1") == ["req:DUE"]
        assert await repo.for_processor("mailer") == []

    async def test_a_page_lists_in_id_order_without_identifiers(self, repo: CaseRepository) -> None:
        for name in ("req:C", "req:A", "req:B"):
            await repo.save_many([opened(new_case(name))])
        first = await repo.page(None, None, 2)
        assert [c.case_id for c in first] == ["req:A", "req:B"]
        assert [c.case_id for c in await repo.page("open", "req:B", 5)] == ["req:C"]
        assert await repo.page("closed", None, 5) == []
        assert all(p.identifiers == {} for c in first for p in c.systems.values())

    async def test_open_cases_show_states_of_their_parts(self, repo: CaseRepository) -> None:
        await repo.save_many([opened(new_case("req:A"))])
        stored = (await repo.get_many(["req:A"]))["req:A"]
        domain.answer(stored.case, "crm", "erased", NOW, lambda _: {})
        await repo.save_many([Write(stored.case, stored, ["ev-a"], [])])
        closed = new_case("req:CLOSED")
        closed.state = "closed"
        await repo.save_many([Write(closed, None, [], [])])
        [case] = await repo.open_cases(10)
        assert case.state == "open"
        assert case.parts == {"crm": "acknowledged", "billing": "sent", "newsletter": "sent"}
        assert await repo.open_cases(0) == []

    async def test_outbox_backlog_counts_events_not_yet_relayed(self, repo: CaseRepository) -> None:
        saved = await repo.save_many([opened(new_case("req:A")), opened(new_case("req:B"))])
        assert await repo.outbox_backlog(100) == 8  # opened + 3 commands, twice
        assert await repo.outbox_backlog(1) == 4
        await repo.relay(FakeBroker().as_broker(), saved)
        assert await repo.outbox_backlog(100) == 0

    async def test_destroyed_keys_leave_no_identifier_readable(self, repo: CaseRepository) -> None:
        await repo.save_many([opened(new_case())])
        await repo.destroy_keys(["req:R-1"], NOW)
        stored = (await repo.get_many(["req:R-1"], reveal=True))["req:R-1"]
        assert all(p.identifiers == {} for p in stored.case.systems.values())

    async def test_keys_of_a_batch_destroyed_at_once_stay_destroyed(
        self, repo: CaseRepository
    ) -> None:
        await repo.save_many([opened(new_case(f"req:R-{i}")) for i in range(3)])
        await repo.destroy_keys(["req:R-0"], NOW)
        # open, already destroyed, and never stored cases in one batch
        await repo.destroy_keys(["req:R-0", "req:R-1", "req:R-2", "req:R-9"], NOW)
        found = await repo.get_many(["req:R-0", "req:R-1", "req:R-2"], reveal=True)
        assert all(p.identifiers == {} for s in found.values() for p in s.case.systems.values())
        # a case whose key went before it was first stored is never stored (nor its key made)
        late = await repo.save_many([opened(new_case("req:R-9")), opened(new_case("req:R-5"))])
        assert [c.doc_id for c in late.saved] == ["req:R-5"]
        assert list(await repo.get_many(["req:R-9", "req:R-5"])) == ["req:R-5"]


class TestMemoryCases(CaseContract):
    @pytest.fixture
    def repo(self) -> CaseRepository:
        return MemoryCases()


@pytest.mark.integration
class TestMongoCases(CaseContract):
    @pytest.fixture
    def repo(self, settings: Settings, mongo_client: Any) -> CaseRepository:
        return MongoCases(service_database(mongo_client, settings, "erasure"))

    async def test_identifiers_are_stored_sealed(
        self, repo: CaseRepository, settings: Settings, mongo_client: Any
    ) -> None:
        await repo.save_many([opened(new_case())])
        doc = await service_database(mongo_client, settings, "erasure")["cases"].find_one()
        assert "a@example.org" not in json.dumps(doc, default=str)
        assert doc is not None and doc["systems"]["crm"]["identifiers"]["sealed"] == 1

    async def test_due_cases_are_found_through_an_integer_index(self, settings: Settings) -> None:
        # nx-27017 serves a range on a datetime field by decoding every document in Python
        # (~50 us per case: the sweeper's query every second then took most of the server).
        finds = Finds()
        client: AsyncMongoClient[Doc] = AsyncMongoClient(
            settings.mongodb_uri, tz_aware=True, event_listeners=[finds]
        )
        try:
            db = service_database(client, settings, "erasure")
            case = new_case("req:DUE-MS")
            case.next_due_at = NOW - timedelta(days=400)  # before every other test's cases
            repo = MongoCases(db)
            await repo.save_many([Write(case, None, [], [])])
            doc = await db["cases"].find_one({"_id": "req:DUE-MS"})
            assert doc is not None and doc["next_due_ms"] == ms(case.next_due_at)
            finds.db = db.name
            assert "req:DUE-MS" in await repo.due(NOW - timedelta(days=399), 1000)
            at = ms(NOW - timedelta(days=399))
            assert finds.filters[-1] == {"next_due_ms": {"$lte": at}}
            await db["cases"].create_index("next_due_at", name="next_due_at")  # the old one
            await ALL_INDEXES.apply(db)
            index = await db["cases"].index_information()
            keys = [info["key"] for info in index.values()]
            assert [("next_due_ms", 1)] in keys and [("next_due_at", 1)] not in keys
        finally:
            await client.close()

    async def test_cases_stored_before_the_integer_field_are_still_found(
        self, settings: Settings, mongo_client: Any
    ) -> None:
        db = service_database(mongo_client, settings, "erasure")
        repo = MongoCases(db)
        case = new_case("req:LEGACY")
        case.next_due_at = NOW - timedelta(days=500)
        await repo.save_many([Write(case, None, [], [])])
        await db["cases"].update_one({"_id": "req:LEGACY"}, {"$unset": {"next_due_ms": ""}})
        assert "req:LEGACY" in await MongoCases(db).due(NOW - timedelta(days=499), 1000)
        doc = await db["cases"].find_one({"_id": "req:LEGACY"})
        assert doc is not None and doc["next_due_ms"] == ms(case.next_due_at)

    async def test_a_batch_reads_and_writes_its_case_keys_in_one_go(
        self, settings: Settings
    ) -> None:
        commands = Commands()
        client: AsyncMongoClient[Doc] = AsyncMongoClient(
            settings.mongodb_uri, tz_aware=True, event_listeners=[commands]
        )
        try:
            db = service_database(client, settings, "erasure")
            commands.db, repo, ids = db.name, MongoCases(db), [f"req:R-{i}" for i in range(50)]
            saved = await repo.save_many([opened(new_case(i)) for i in ids])
            assert len(saved.saved) == 50 and commands.names == ["find", "insert"]
            await repo.relay(FakeBroker().as_broker(), saved)  # from memory: no key read
            commands.names.clear()
            stored = await repo.get_many(ids, reveal=True)
            assert stored["req:R-7"].case.systems["crm"].identifiers == IDS
            await repo.save_many([Write(s.case, s, ["ev-x"], []) for s in stored.values()])
            assert commands.names == ["find", "find"]  # the keys: for reveal, for the save
            commands.names.clear()
            answered = await repo.get_many(ids)  # answers keep identifiers sealed
            for s in answered.values():
                domain.answer(s.case, "crm", "erased", NOW, lambda _: {})
            await repo.save_many([Write(s.case, s, ["ev-y"], []) for s in answered.values()])
            assert commands.names == []  # nothing to seal or open: no key read
            await repo.destroy_keys(ids, NOW)
            assert commands.names == ["find", "update"]
        finally:
            await client.close()
