"""A service or a CLI command that cannot start says why in one line and exits non-zero.

Every case runs as a subprocess against 127.0.0.1 ports nothing listens on; they are
started together (each pays the interpreter's start-up) and read by the tests below.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from shared.mongo import create_client, mongo_hosts
from shared.settings import Settings
from tests.support import REPO

Result = tuple[int, str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Result]]:
    tmp = tmp_path_factory.mktemp("start-errors")
    (tmp / "policy.yaml").write_text("jurisdiction: [unclosed\n")
    (tmp / "registry.yaml").write_text("systems: 12\n")
    mongo, kafka = f"mongodb://user:pw@127.0.0.1:{free_port()}/db", f"127.0.0.1:{free_port()}"
    base = {
        **os.environ,
        "MONGODB_URI": mongo,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "GARDIEN_PSEUDONYM_KEY": secrets.token_hex(32),
        "GARDIEN_SERVICE_PORT": str(free_port()),
        "GARDIEN_LOG_FORMAT": "json",
    }
    cases = {
        "verify": (["audit", "verify"], {}),
        "mongo": (["service", "intake"], {}),
        "policy": (["service", "deadlines"], {"GARDIEN_POLICY_FILE": str(tmp / "policy.yaml")}),
        "registry": (
            ["service", "erasure"],
            {"GARDIEN_ERASURE_REGISTRY_PATH": str(tmp / "registry.yaml")},
        ),
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "gardien", *args],
            env={**base, **env},
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (args, env) in cases.items()
    }
    done: dict[str, Result] = {}
    try:
        for name, proc in procs.items():
            _, err = proc.communicate(timeout=150)
            done[name] = (proc.returncode, err)
        yield done
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()


def one_line(result: Result) -> str:
    code, err = result
    lines = err.strip().splitlines()
    assert code != 0 and "Traceback" not in err, err
    assert len(lines) == 1, err
    return lines[0]


def test_audit_verify_with_mongodb_unreachable(results: dict[str, Result]) -> None:
    line = one_line(results["verify"])
    assert line.startswith("gardien: MongoDB unreachable at 127.0.0.1:"), line
    assert "pw" not in line and results["verify"][0] == 2


def test_a_service_with_mongodb_unreachable(results: dict[str, Result]) -> None:
    line = one_line(results["mongo"])
    assert line.startswith("gardien: cannot start intake: MongoDB unreachable at 127.0.0.1:")
    assert "ServerSelectionTimeoutError" in line and "pw" not in line


def test_a_service_with_a_bad_policy_file(results: dict[str, Result]) -> None:
    line = one_line(results["policy"])
    assert line.startswith("gardien: cannot start deadlines:") and "policy.yaml" in line


def test_a_service_with_a_bad_registry_file(results: dict[str, Result]) -> None:
    line = one_line(results["registry"])
    assert line.startswith("gardien: cannot start erasure:"), line


def test_mongodb_waits_are_bounded_and_hosts_shown_without_credentials() -> None:
    client = create_client(Settings(mongodb_uri="mongodb://127.0.0.1:1"))
    assert client.options.server_selection_timeout <= 5
    assert mongo_hosts("mongodb://u:p@a:1,b:2/db?replicaSet=rs0") == "a:1,b:2"
    assert mongo_hosts("mongodb+srv://u:p@cluster.example/db") == "cluster.example"
