"""Run `gardien up` as a child process: start it, wait until ready, stop it with Ctrl-C.

Shared by the end-to-end tests, the benchmarks and the fault-injection scripts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from gardien import stack
from gardien.launcher import member_ports
from tests.support import REPO


def up_env(bootstrap: str | None, mongodb_uri: str | None, **extra: str) -> dict[str, str]:
    """This process's environment pointed at a stack, with private databases and quick joins."""
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


# Base ports are taken below the kernel's ephemeral range (32768 and up on Linux), where the
# other worker's and the clients' own sockets would otherwise land on a service's port.
BASE_LOW, BASE_HIGH = 20000, 32000


def free_base(members: int = 1) -> int:
    """A base port whose service ports (each member's, laid out as `gardien up` does) are free
    now, searched from a start of this process's own (two workers look in different places)."""
    slots = (BASE_HIGH - BASE_LOW) // 100
    start = os.getpid() % slots
    for i in range(slots):
        base = BASE_LOW + ((start + i) % slots) * 100
        ports = member_ports(base, members).values()
        if all(stack.port_or_free(p) == p for p in ports):
            return base
    raise RuntimeError(f"no free base port between {BASE_LOW} and {BASE_HIGH}")


def start_up(
    home: Path,
    env: dict[str, str],
    timeout: float = 60,
    extra_args: list[str] | None = None,
    base_port: int | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `gardien up` and wait until its API reports every service ready."""
    port = stack.free_port()
    base = base_port or free_base()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gardien",
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
