"""End-to-end fixture: `gardien up` in a subprocess against the session's embedded stack."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from gardien import stack
from shared.kafka_admin import ensure_topics
from shared.topics import all_topics
from tests.e2e.otlp_receiver import Receiver
from tests.support import REPO, StackInfo
from tests.upctl import start_up, stop_up, up_env

__all__ = ["System", "broker_of_its_own", "start_up", "stop_up", "up_env"]


@contextmanager
def broker_of_its_own(home: Path) -> Iterator[str]:
    """The bootstrap of a broker for one module's `gardien up --with-reference-systems`.

    The reference systems' consumer groups (``refsys-crm``...) are the same in every run:
    on the session's broker, another run's reference CRM (``tests/erasure``'s, which lives
    for the whole session) would take this run's commands and erase in its own database.
    """
    port = stack.free_port()
    broker = stack.start_broker(home, port)
    try:
        bootstrap = f"127.0.0.1:{port}"
        asyncio.run(ensure_topics(bootstrap, all_topics()))
        yield bootstrap
    finally:
        stack.terminate_all([broker])


@dataclass
class System:
    """A running `gardien up` and how to reach it."""

    proc: subprocess.Popen[bytes]
    home: Path
    api: str
    env: dict[str, str]
    admin_key: str
    traces: Receiver

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.admin_key}

    def gardien(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run the `gardien` command against this system."""
        return subprocess.run(
            [sys.executable, "-m", "gardien", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            timeout=60,
            cwd=REPO,
        )


@pytest.fixture(scope="module")
def system(embedded_stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    home = tmp_path_factory.mktemp("gardien-home")
    with Receiver() as traces:
        env = up_env(
            embedded_stack.bootstrap,
            embedded_stack.mongodb_uri,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{traces.port}",
        )
        proc, api = start_up(home, env)
        key = (home / "admin-api-key").read_text().strip()
        try:
            yield System(proc, home, api, env, key, traces)
        finally:
            stop_up(proc)
