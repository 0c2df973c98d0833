"""End-to-end fixture: `gardien up` in a subprocess against the session's embedded stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared import stack
from tests.e2e.otlp_receiver import Receiver
from tests.support import REPO, StackInfo


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
            [sys.executable, "-m", "shared.cli.main", *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            timeout=60,
            cwd=REPO,
        )


def up_env(bootstrap: str | None, mongodb_uri: str | None, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in {"KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI"}
    }
    if bootstrap:
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    if mongodb_uri:
        env["MONGODB_URI"] = mongodb_uri
    env.update(
        {
            "GARDIEN_DB_PREFIX": f"e2e{uuid.uuid4().hex[:8]}_",
            "GARDIEN_KAFKA_SESSION_TIMEOUT_MS": "3000",
            "GARDIEN_FETCH_MAX_WAIT_MS": "20",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            **extra,
        }
    )
    return env


def start_up(
    home: Path, env: dict[str, str], timeout: float = 60, extra_args: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `gardien up` and wait until its API reports every service ready."""
    port, base = stack.free_port(), 20000 + (os.getpid() % 2000) * 10
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shared.cli.main",
            "up",
            "--home",
            str(home),
            "--http-port",
            str(port),
            "--base-port",
            str(base),
            *(extra_args or []),
        ],
        env=env,
        cwd=REPO,
        stdout=(home / "up.out").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gardien up exited: {(home / 'up.out').read_text()[-2000:]}")
        try:
            if httpx.get(f"{api}/readyz", timeout=2).status_code == 200:
                return proc, api
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_up(proc)  # Ctrl-C, so the launcher stops what it started (SIGKILL would orphan them)
    raise AssertionError(f"not ready in {timeout}s: {(home / 'up.out').read_text()[-2000:]}")


def stop_up(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C `gardien up` and wait for it to finish stopping its children."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise


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
