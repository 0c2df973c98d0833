"""MongoDB access: one AsyncMongoClient per process, one database per service."""

from __future__ import annotations

from dataclasses import dataclass, field

from pymongo import AsyncMongoClient, IndexModel
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
