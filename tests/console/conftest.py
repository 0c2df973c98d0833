"""`gardien up` once for the console's tests (browser and schemathesis), with a manual system."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
    env = up_env(
        embedded_stack.bootstrap,
        embedded_stack.mongodb_uri,
        GARDIEN_ERASURE_REGISTRY_PATH=str(home / "registry.yaml"),
    )
    proc, api = start_up(home, env, timeout=90)
    try:
        yield api, (home / "admin-api-key").read_text().strip()
    finally:
        stop_up(proc)
