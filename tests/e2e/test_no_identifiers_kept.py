"""After an erasure case closes, no Gardien database holds the subject's identifiers readably.

Gardien must do what it enforces (issue 10, item 6): it keeps identifiers only as keyed
pseudonyms or sealed under a subject key, and destroys that key when the case closes. The
test runs `gardien up --with-reference-systems`, submits the example erasure request, waits
for the case to close, then reads every document of every collection of every database
with this run's `GARDIEN_DB_PREFIX` (the reference systems' `refsys_*` databases stand for
the company's own systems and are not scanned) looking for the e-mail and customer id.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests.e2e.conftest import broker_of_its_own, start_up, stop_up, up_env
from tests.support import REPO, StackInfo, example

pytestmark = pytest.mark.e2e
EMAIL, CUSTOMER = "alice.martin@example.org", "C-1042"


@pytest.fixture(scope="module")
def up(embedded_stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("no-identifiers")
    with broker_of_its_own(home) as bootstrap:
        env = up_env(
            bootstrap,
            embedded_stack.mongodb_uri,
            # Data of their own: other e2e tests erase the same reference customer on this server.
            REFSYS_DB_PREFIX=f"refsys_noid_{uuid.uuid4().hex[:6]}_",
        )
        proc, api = start_up(home, env, extra_args=["--with-reference-systems"])
        try:
            yield api, env, {"X-API-Key": (home / "admin-api-key").read_text().strip()}
        finally:
            stop_up(proc)


def readable(value: Any, needles: tuple[str, ...], path: str = "") -> list[str]:
    """Paths of every string (or key) at any depth containing a needle, in any case."""
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            found += readable(str(key), needles, where) + readable(item, needles, where)
        return found
    if isinstance(value, list | tuple):
        return [
            hit for i, item in enumerate(value) for hit in readable(item, needles, f"{path}[{i}]")
        ]
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        text = value.casefold()
        return [path] if any(n in text for n in needles) else []
    return []


def test_the_scan_finds_identifiers_at_any_depth_and_case() -> None:
    doc = {"outbox": [{"event": json.dumps({"subject": {"email": EMAIL.upper()}})}],
           "history": [{"note": f"customer {CUSTOMER.lower()}"}], "n": 3}  # fmt: skip
    needles = (EMAIL.casefold(), CUSTOMER.casefold())
    assert readable(doc, needles) == ["outbox[0].event", "history[0].note"]
    assert readable({"subject_refs": ["9f2c"], "kind": "customer"}, needles) == []


def wait_json(url: str, headers: dict[str, str], done: Any, timeout: float = 120) -> Any:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        reply = httpx.get(url, headers=headers, timeout=5)
        if reply.status_code == 200:
            last = reply.json()
            if done(last):
                return last
        time.sleep(0.3)
    raise AssertionError(f"{url} never reached the expected state; last: {last}")


def publish(env: dict[str, str], event: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "event.json").write_text(json.dumps(event))
    done = subprocess.run(
        [sys.executable, "-m", "gardien", "publish", str(tmp_path / "event.json")],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()


def key_destroyed(mongo: MongoClient[Any], db: str, kid: str) -> bool:
    doc = mongo[db]["subject_keys"].find_one({"_id": kid})
    return doc is not None and not doc.get("key")


def test_no_gardien_database_keeps_the_erased_subject_readable(up: Any, tmp_path: Path) -> None:
    api, env, headers = up
    request_id = f"REQ-SCAN-{uuid.uuid4().hex[:6]}"
    publish(env, example("request-erasure-received.json", request_id=request_id), tmp_path)
    case = wait_json(
        f"{api}/v1/erasure/cases/req:{request_id}", headers, lambda c: c["state"] == "closed"
    )
    assert {"crm", "newsletter"} <= set(case["systems"])  # the subject was really erased
    wait_json(
        f"{api}/v1/requests/{request_id}",
        headers,
        lambda r: (r.get("progress") or {}).get("req", {}).get("state") == "closed",
        timeout=60,
    )
    prefix = env["GARDIEN_DB_PREFIX"]
    mongo: MongoClient[Any] = MongoClient(env["MONGODB_URI"], tz_aware=True)
    try:
        deadline = time.monotonic() + 30
        wanted = [(f"{prefix}intake", f"request:{request_id}"),
                  (f"{prefix}erasure", f"case:req:{request_id}")]  # fmt: skip
        while not all(key_destroyed(mongo, db, kid) for db, kid in wanted):
            assert time.monotonic() < deadline, "the subject keys were not destroyed"
            time.sleep(0.3)
        names = [n for n in mongo.list_database_names() if n.startswith(prefix)]
        assert {f"{prefix}{s}" for s in ("intake", "erasure", "deadlines", "audit")} <= set(names)
        needles = (EMAIL.casefold(), CUSTOMER.casefold())
        hits = [
            f"{name}.{coll}[{doc.get('_id')}].{path}"
            for name in names
            for coll in mongo[name].list_collection_names()
            for doc in mongo[name][coll].find({})
            for path in readable(doc, needles)
        ]
    finally:
        mongo.close()
    assert hits == [], "identifiers readable in Gardien's own databases:\n" + "\n".join(hits)
