"""``find_any``: one ``$in`` on MongoDB, indexed equalities on the embedded server while the
values are few (it answers ``$in`` on a secondary field by decoding every document)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.collection import AsyncCollection

from shared import mongo
from shared.mongo import EQUALITY_MAX, find_any, scans_in
from shared.settings import Settings

pytestmark = pytest.mark.integration
Doc = dict[str, object]


class Filters(monitoring.CommandListener):
    """The filters of the ``find`` commands sent to one collection."""

    def __init__(self, collection: str) -> None:
        self.collection, self.filters = collection, list[Doc]()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command["find"] == self.collection:
            self.filters.append(dict(event.command.get("filter") or {}))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None: ...

    def failed(self, event: monitoring.CommandFailedEvent) -> None: ...


@pytest.fixture
async def counted(settings: Settings) -> AsyncIterator[tuple[AsyncCollection[Doc], Filters]]:
    name = f"find_any_{uuid.uuid4().hex[:8]}"
    listener = Filters(name)
    client: AsyncMongoClient[Doc] = AsyncMongoClient(
        settings.mongodb_uri, tz_aware=True, event_listeners=[listener]
    )
    collection = client["gardien_tests"][name]
    await collection.create_index("h")
    await collection.insert_many([{"_id": i, "h": f"h{i % 50}"} for i in range(200)])
    listener.filters.clear()
    try:
        yield collection, listener
    finally:
        await collection.drop()
        await client.close()


async def test_the_embedded_server_is_recognised(
    counted: tuple[AsyncCollection[Doc], Filters],
) -> None:
    collection, _ = counted
    assert await scans_in(collection.database)


async def test_few_values_are_read_by_equality_many_by_one_in(
    counted: tuple[AsyncCollection[Doc], Filters],
) -> None:
    collection, seen = counted
    few = await find_any(collection, "h", ["h3", "h7", "h3", "nobody"])
    assert sorted(int(str(d["_id"])) for d in few) == [3, 7, 53, 57, 103, 107, 153, 157]
    assert sorted(seen.filters, key=str) == [{"h": "h3"}, {"h": "h7"}, {"h": "nobody"}]
    seen.filters.clear()
    many = [f"h{i}" for i in range(EQUALITY_MAX + 1)]
    found = await find_any(collection, "h", many, {"_id": 1})
    assert len(found) == 4 * (EQUALITY_MAX + 1)
    assert seen.filters == [{"h": {"$in": sorted(many)}}]


async def test_on_mongodb_one_in_whatever_the_number(
    counted: tuple[AsyncCollection[Doc], Filters], monkeypatch: pytest.MonkeyPatch
) -> None:
    collection, seen = counted
    monkeypatch.setitem(mongo._SCANS, collection.database.client, False)  # as MongoDB
    found = await find_any(collection, "h", ["h7", "h3"])
    assert len(found) == 8 and seen.filters == [{"h": {"$in": ["h3", "h7"]}}]
    assert await find_any(collection, "h", []) == []
