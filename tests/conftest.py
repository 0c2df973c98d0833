"""Session fixtures: the embedded stack on free loopback ports, settings per test."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gardien import stack
from shared.kafka_admin import ensure_topics
from shared.settings import Settings
from shared.topics import all_topics
from tests.support import StackInfo


def pytest_configure(config: pytest.Config) -> None:
    """One pseudonym key for the test session (services and child processes inherit it)."""
    os.environ.setdefault("GARDIEN_PSEUDONYM_KEY", secrets.token_hex(32))


# A package whose fixtures are package-scoped: its modules share one worker under xdist.
ONE_WORKER_PACKAGES = ("tests/console/",)


def work_unit(nodeid: str) -> str:
    """What one xdist worker runs together: a module, or a package of ``ONE_WORKER_PACKAGES``."""
    path = nodeid.split("::", 1)[0]
    return next((p for p in ONE_WORKER_PACKAGES if path.startswith(p)), path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``make test`` (``-n 2 --dist loadscope``): each work unit on one worker, so module and
    package fixtures (a ``gardien up``, a broker of its own) are set up once per run.

    xdist's own ``loadgroup`` cannot do it on pytest 9.2: it marks groups by rewriting node
    ids, which no longer takes effect (pytest-xdist issue 1386).
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return UnitScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist, the units that run ``gardien up`` or other processes (``e2e``) first, so
    that the workers end on short units rather than one waiting for the other's long one."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # one process: the order of the files
    slow = {work_unit(i.nodeid) for i in items if i.get_closest_marker("e2e")}
    items.sort(key=lambda i: work_unit(i.nodeid) not in slow)  # stable: order kept within


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    """A real Kafka-protocol broker and MongoDB wire server, shared by the session.

    Set GARDIEN_TEST_KAFKA and GARDIEN_TEST_MONGODB to run against servers you started.
    """
    if os.environ.get("GARDIEN_TEST_TIER") == "containers":
        from tests.containers.servers import container_stack

        with container_stack() as info:
            asyncio.run(ensure_topics(info.bootstrap, all_topics()))
            yield info
        return
    kafka, mongo = os.environ.get("GARDIEN_TEST_KAFKA"), os.environ.get("GARDIEN_TEST_MONGODB")
    if kafka and mongo:
        asyncio.run(ensure_topics(kafka, all_topics()))
        yield StackInfo(kafka, mongo, None, None)
        return
    home = tmp_path_factory.mktemp("stack")
    broker = stack.start_broker(home, stack.free_port())
    mongo_proc = stack.start_mongo(home, stack.free_port())
    kport = int(broker.args[-1].rsplit(":", 1)[1])
    mport = int(mongo_proc.args[mongo_proc.args.index("-p") + 1])
    info = StackInfo(f"127.0.0.1:{kport}", f"mongodb://127.0.0.1:{mport}", broker, mongo_proc, home)
    asyncio.run(ensure_topics(info.bootstrap, all_topics()))
    try:
        yield info
    finally:
        stack.terminate_all([broker, mongo_proc])


@pytest.fixture
def settings(embedded_stack: StackInfo, tmp_path: Path) -> Settings:
    """Settings on the embedded stack with databases private to this test."""
    return Settings(
        kafka_bootstrap_servers=embedded_stack.bootstrap,
        mongodb_uri=embedded_stack.mongodb_uri,
        gardien_db_prefix=f"t{uuid.uuid4().hex[:10]}_",
        gardien_api_keys_file=tmp_path / "api-keys.json",
        gardien_fetch_max_wait_ms=20,
        gardien_kafka_session_timeout_ms=3_000,
    )


@pytest.fixture
async def mongo_client(settings: Settings) -> AsyncIterator[object]:
    """A MongoDB client on the embedded server."""
    from shared.mongo import create_client

    client = create_client(settings)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def own_broker(settings: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    """``settings`` on a broker of the test's own, for tests that run several members of one
    consumer group: once two members of a group have left, the embedded broker keeps a new
    member of that group re-joining for ever (or ~300 s), which would stall every later test's
    service of that group on the shared broker (docs/devstack.md)."""
    port = stack.free_port()
    broker = stack.start_broker(tmp_path, port)
    try:
        await ensure_topics(f"127.0.0.1:{port}", all_topics())
        yield settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{port}"})
    finally:
        stack.terminate_all([broker])
