"""MongoDB access: one AsyncMongoClient per process, one database per service."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.settings import Settings

Document = dict[str, object]


def create_client(settings: Settings) -> AsyncMongoClient[Document]:
    """A client that returns timezone-aware UTC datetimes and fails fast when unreachable."""
    return AsyncMongoClient(
        settings.mongodb_uri,
        tz_aware=True,
        serverSelectionTimeoutMS=5_000,
        connectTimeoutMS=5_000,
        appname="gardien",
    )


def mongo_hosts(uri: str) -> str:
    """The hosts of a MongoDB URI, without credentials or options (for error messages)."""
    rest = uri.split("://", 1)[-1]
    hosts = rest.rsplit("@", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    return hosts or "the configured MONGODB_URI"


def service_database(
    client: AsyncMongoClient[Document], settings: Settings, service: str
) -> AsyncDatabase[Document]:
    """The database owned by ``service``; no service opens another's."""
    return client[settings.database_name(service)]


@dataclass(frozen=True)
class IndexPlan:
    """The indexes a service needs, by collection; applied at start-up, idempotently."""

    indexes: dict[str, list[IndexModel]] = field(default_factory=dict)
    # Fields whose single-field index no query uses any more (dropped whatever its name:
    # the embedded server names indexes itself).
    retired: dict[str, list[str]] = field(default_factory=dict)

    async def apply(self, db: AsyncDatabase[Document]) -> None:
        """Create every index (a no-op for those that already exist), drop retired ones
        (each costs every write on the embedded server)."""
        for collection, models in self.indexes.items():
            if models:
                await db[collection].create_indexes(models)
        for collection, fields in self.retired.items():
            existing = await db[collection].index_information()
            for name, info in existing.items():
                keys = [k for k, _ in info.get("key", [])]
                if len(keys) == 1 and keys[0] in fields:
                    await db[collection].drop_index(name)


# The embedded server answers ``{field: {"$in": [...]}}`` on a secondary field by decoding
# every document of the collection (docs/devstack.md): with 20,000 documents each such read
# costs ~70 ms, whatever the number of values. Up to this many values, one indexed equality
# query per value is cheaper there. On MongoDB a single ``$in`` is always used.
EQUALITY_MAX = 32
_SCANS: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


async def scans_in(db: AsyncDatabase[Any]) -> bool:
    """Whether ``db``'s server answers ``$in`` on a secondary field by a scan (nx-27017);
    asked once per client."""
    client = db.client
    if client not in _SCANS:
        info = await client.admin.command("buildInfo")
        _SCANS[client] = str(info.get("process", "")).startswith("nx_27017")
    return _SCANS[client]


async def find_any(
    collection: AsyncCollection[Any],
    field_name: str,
    values: Sequence[object],
    projection: Mapping[str, Any] | None = None,
) -> list[Any]:
    """The documents whose ``field_name`` is one of ``values`` (each document once)."""
    wanted = sorted(set(values), key=str)
    if not wanted:
        return []
    if len(wanted) > EQUALITY_MAX or not await scans_in(collection.database):
        return await collection.find({field_name: {"$in": wanted}}, projection).to_list(None)
    found = await asyncio.gather(
        *(collection.find({field_name: v}, projection).to_list(None) for v in wanted)
    )
    return [doc for docs in found for doc in docs]
