"""The container tier: the integration suite again, on Apache Kafka and MongoDB images."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.containers.servers import docker_unavailable_reason
from tests.support import REPO

pytestmark = pytest.mark.container


def test_integration_suite_on_apache_kafka_and_mongodb() -> None:
    reason = docker_unavailable_reason()
    if reason:
        print(f"container tier skipped: {reason}")
        pytest.skip(f"container tier: {reason}; the embedded-stack tier ran instead")
    env = {**os.environ, "GARDIEN_TEST_TIER": "containers"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "tests/integration", "-p", "no:cacheprovider"],
        cwd=REPO,
        env=env,
        timeout=1800,
    )
    assert done.returncode == 0
