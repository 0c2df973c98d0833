"""`gardien up` with its own embedded stack: broker restart, Ctrl-C, no orphans."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from gardien import stack
from tests.e2e.conftest import start_up, stop_up, up_env
from tests.support import example

pytestmark = pytest.mark.e2e


def _state(home: Path) -> dict[str, object]:
    return dict(json.loads((home / "up.json").read_text()))


def _pids(state: dict[str, object]) -> set[int]:
    children = state["children"]
    assert isinstance(children, dict)
    return {int(p) for p in children.values()} | {
        int(state[k])
        for k in ("broker_pid", "mongo_pid")
        if state.get(k)  # type: ignore[call-overload]
    }


def _publish_and_find(home: Path, api: str, env: dict[str, str], key: str) -> None:
    import subprocess
    import sys

    event = example("request-received.json", request_id=f"REQ-UP-{uuid.uuid4().hex[:6]}")
    path = home / f"{event['id']}.json"
    path.write_text(json.dumps(event))
    # No KAFKA_BOOTSTRAP_SERVERS: publish finds the stack `gardien up` runs (up.json).
    done = subprocess.run(
        [sys.executable, "-m", "gardien", "publish", "--home", str(home), str(path)],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = httpx.get(
            f"{api}/v1/audit/events",
            params={"request_id": event["data"]["request_id"]},
            headers={"X-API-Key": key},
            timeout=5,
        )
        if r.status_code == 200 and r.json()["items"]:
            return
        time.sleep(0.1)
    raise AssertionError("event not audited")


def test_broker_restart_restarts_every_service_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    env = up_env(None, None)
    proc, api = start_up(tmp_path, env)
    seen: set[int] = set()
    try:
        key = (tmp_path / "admin-api-key").read_text().strip()
        first = _state(tmp_path)
        seen |= _pids(first) | {proc.pid}
        _publish_and_find(tmp_path, api, env, key)

        stack.terminate(int(first["broker_pid"]), timeout=5)  # type: ignore[call-overload]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = _state(tmp_path)
            children_then, children_now = first["children"], now["children"]
            assert isinstance(children_then, dict) and isinstance(children_now, dict)
            if now["broker_pid"] != first["broker_pid"] and all(
                children_now[name] != pid for name, pid in children_then.items()
            ):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the launcher did not restart the broker and every service")
        seen |= _pids(_state(tmp_path))
        start_up_ready = time.monotonic() + 60
        while time.monotonic() < start_up_ready:
            try:
                if httpx.get(f"{api}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        _publish_and_find(tmp_path, api, env, key)
    finally:
        stop_up(proc)
    assert proc.returncode == 0
    alive = [pid for pid in seen if stack.alive(pid)]
    assert not alive, f"processes left behind: {alive}"
    assert not (tmp_path / "up.json").exists()
