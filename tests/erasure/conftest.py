"""Reference connected systems as separate processes, started once for the erasure tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gardien import stack
from tests.support import REPO, StackInfo


@dataclass
class RefSystems:
    """The running reference systems: their database prefix and the newsletter's port."""

    db_prefix: str
    http_port: int
    procs: list[subprocess.Popen[bytes]]

    def db_name(self, system_id: str) -> str:
        return f"{self.db_prefix}{system_id}"


def _wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if proc.poll() is not None:
            raise AssertionError(f"reference system exited: {text}")
        if "ready" in text:
            return
        time.sleep(0.1)
    raise AssertionError(f"reference system not ready: {log.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def refsys(
    embedded_stack: StackInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RefSystems]:
    """crm, newsletter (HTTP), billing, vendor (2 s delay) and ghost (never answers)."""
    prefix, port = f"r{uuid.uuid4().hex[:8]}_", stack.free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": embedded_stack.bootstrap,
        "MONGODB_URI": embedded_stack.mongodb_uri,
        "PYTHONUNBUFFERED": "1",
    }
    base = [sys.executable, "-m", "examples.connected_systems", "--db-prefix", prefix]
    argv = [
        ["--system", "crm"],
        ["--system", "newsletter", "--port", str(port)],
        ["--system", "billing"],
        ["--system", "vendor", "--delay", "2"],
        ["--system", "vendor", "--id", "ghost", "--fail-mode", "never-answer"],
    ]
    logs = tmp_path_factory.mktemp("refsys")
    procs, files = [], []
    for n, args in enumerate(argv):
        files.append(logs / f"{n}.log")
        with files[-1].open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [*base, *args],
                    cwd=REPO,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        for proc, log in zip(procs, files, strict=True):
            _wait_ready(proc, log)
        yield RefSystems(prefix, port, procs)
    finally:
        stack.terminate_all(procs)
