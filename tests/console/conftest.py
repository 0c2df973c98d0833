"""`gardien up` once for the console's tests (browser and schemathesis), with a manual system."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gardien import stack
from shared.kafka_admin import ensure_topics
from shared.topics import all_topics
from tests.support import StackInfo
from tests.upctl import start_up, stop_up, up_env

REGISTRY = """
systems:
  - id: paper-archive
    description: Paper archive and shared drive (no connector; erased by hand)
    categories:
      profile: {action: erase, activity: customers}
      contact: {action: erase, activity: customers}
    identifiers: [email, customer_id]
    transport: {kind: kafka}
    ack_timeout_seconds: 86400
"""


@pytest.fixture(scope="package")
def up(
    embedded_stack: StackInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(API base URL, admin key) of a `gardien up` whose only system is erased by hand."""
    home = tmp_path_factory.mktemp("console-home")
    (home / "registry.yaml").write_text(REGISTRY)
    # A broker of its own: on the session's broker, the services of `gardien up` would first
    # work through every earlier test's records (same consumer groups), and the pages the
    # browser waits for would come late.
    port = stack.free_port()
    broker = stack.start_broker(home, port)
    bootstrap = f"127.0.0.1:{port}"
    asyncio.run(ensure_topics(bootstrap, all_topics()))
    env = up_env(
        bootstrap,
        embedded_stack.mongodb_uri,
        GARDIEN_ERASURE_REGISTRY_PATH=str(home / "registry.yaml"),
    )
    try:
        proc, api = start_up(home, env, timeout=90)
        try:
            yield api, (home / "admin-api-key").read_text().strip()
        finally:
            stop_up(proc)
    finally:
        stack.terminate_all([broker])
