"""An access request through `gardien up --with-reference-systems`, as a DPO would see it.

The four reference systems get an ``export`` command each, upload their records to the
signed URL it carries and answer over Kafka (the newsletter in its HTTP response); the
vendor answers only the retry; billing is told to fail and is escalated. The package built
from the answers lists the four systems, its JSON matches what each system holds and its CSV
opens with Python's ``csv``; once downloaded, the request is answered and its clock met.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pymongo import MongoClient

from tests.e2e.conftest import broker_of_its_own, start_up, stop_up, up_env
from tests.e2e.test_flows_e2e import wait_json
from tests.e2e.test_no_identifiers_kept import readable
from tests.support import REPO, StackInfo, example

pytestmark = pytest.mark.e2e
EMAIL, CUSTOMER = "alice.martin@example.org", "C-1042"
SYSTEMS = {"crm", "newsletter", "billing", "vendor"}


def quick_registry(path: Path) -> Path:
    """The example registry with timeouts of seconds: retries and escalation within a test."""
    registry = yaml.safe_load((REPO / "examples/connected_systems/registry.yaml").read_text())
    for system in registry["systems"]:
        system["ack_timeout_seconds"] = 12 if system["id"] == "billing" else 90
        system["retry"] = {"initial_seconds": 3, "max_seconds": 4}
    path.write_text(yaml.safe_dump(registry))
    return path


@pytest.fixture(scope="module")
def access(embedded_stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("access")
    with broker_of_its_own(home) as bootstrap:
        env = up_env(
            bootstrap,
            embedded_stack.mongodb_uri,
            GARDIEN_ERASURE_REGISTRY_PATH=str(quick_registry(home / "registry.yaml")),
            GARDIEN_ERASURE_TICK_SECONDS="0.5",
            REFSYS_EXPORT_FAIL="billing",
            # Data of their own: other e2e tests erase the same reference customer on this server.
            REFSYS_DB_PREFIX=f"refsys_acc_{uuid.uuid4().hex[:6]}_",
        )
        proc, api = start_up(home, env, timeout=240, extra_args=["--with-reference-systems"])
        try:
            yield api, env, {"X-API-Key": (home / "admin-api-key").read_text().strip()}
        finally:
            stop_up(proc)


def publish(env: dict[str, str], path: Path, event: dict[str, Any]) -> None:
    path.write_text(json.dumps(event))
    done = subprocess.run(
        [sys.executable, "-m", "gardien", "publish", str(path)],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()


def held(env: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """What each reference system holds about the subject, as JSON would show it."""
    mongo: MongoClient[Any] = MongoClient(env["MONGODB_URI"], tz_aware=True)
    try:
        found: dict[str, list[dict[str, Any]]] = {}
        queries = {
            "crm": [("customers", {"email": EMAIL}), ("notes", {"customer_id": CUSTOMER})],
            "newsletter": [("subscribers", {"email": EMAIL})],
            "vendor": [("profiles", {"email": EMAIL})],
        }
        for system, parts in queries.items():
            db = mongo[f"{env['REFSYS_DB_PREFIX']}{system}"]
            found[system] = [
                json.loads(json.dumps({k: v for k, v in doc.items() if k != "_id"}, default=iso))
                for collection, query in parts
                for doc in db[collection].find(query)
            ]
        return found
    finally:
        mongo.close()


def iso(value: Any) -> str:
    return str(value.isoformat())


def plain(record: dict[str, Any]) -> dict[str, Any]:
    """A package record without the export's own fields, the vendor's nesting undone."""
    out = {k: v for k, v in record.items() if k not in {"category", "source", "profile"}}
    return {**out, **record.get("profile", {})}


def test_access_request_end_to_end(access: Any, tmp_path: Path) -> None:
    api, env, headers = access
    request_id = f"REQ-ACC-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC).isoformat()
    event = example("request-received.json", request_id=request_id, received_at=now)
    publish(env, tmp_path / "access.json", {**event, "time": now})

    case = wait_json(
        f"{api}/v1/erasure/cases/acc:{request_id}",
        headers,
        lambda c: c["state"] == "closed",
        timeout=150,
    )
    systems = case["systems"]
    assert set(systems) == SYSTEMS and case["collection"]["package_id"]
    assert {s["action"] for s in systems.values()} == {"export"}
    assert systems["vendor"]["outcome"] == "exported" and systems["vendor"]["attempts"] >= 2
    assert systems["billing"]["outcome"] == "failed" and systems["billing"]["escalated_at"]
    assert {s for s, v in systems.items() if v["outcome"] == "exported"} == SYSTEMS - {"billing"}

    view = httpx.get(f"{api}/v1/requests/{request_id}", headers=headers, timeout=10).json()
    assert view["progress"]["acc"]["state"] == "closed"
    assert view["status"] == "received"  # built is not delivered

    reply = httpx.get(f"{api}/v1/requests/{request_id}/package", headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text
    package = zipfile.ZipFile(io.BytesIO(reply.content))
    manifest = json.loads(package.read("manifest.json"))
    listed = {s["system"]: s for s in manifest["systems"]}
    assert set(listed) >= SYSTEMS
    assert listed["billing"]["status"] in {"failed", "no_answer"} and listed["billing"]["reason"]
    holds = held(env)
    for system in SYSTEMS - {"billing"}:
        assert listed[system]["status"] == "answered"
        records = json.loads(package.read(f"{system}/records.json"))
        assert sorted(map(plain, records), key=json.dumps) == sorted(holds[system], key=json.dumps)
        rows = list(csv.DictReader(io.StringIO(package.read(f"{system}/records.csv").decode())))
        assert len(rows) == len(records) and all(r["category"] for r in rows)

    answered = wait_json(
        f"{api}/v1/requests/{request_id}",
        headers,
        lambda r: r["status"] in {"responded", "closed"},
        timeout=60,
    )
    assert answered["clock"]["state"] == "stopped" and answered["clock"]["on_time"] is True
    wait_json(
        f"{api}/v1/deadlines?kind=request&state=met&limit=500",
        headers,
        lambda page: any(t["timer_id"] == f"request:{request_id}" for t in page["items"]),
        timeout=60,
    )
    assert unreadable_in_gardien(env) == []  # uploads and package are sealed, like the rest


def unreadable_in_gardien(env: dict[str, str]) -> list[str]:
    """Where Gardien's own databases hold the subject's identifiers readably (none)."""
    prefix, needles = env["GARDIEN_DB_PREFIX"], (EMAIL.casefold(), CUSTOMER.casefold())
    mongo: MongoClient[Any] = MongoClient(env["MONGODB_URI"], tz_aware=True)
    try:
        names = [n for n in mongo.list_database_names() if n.startswith(prefix)]
        assert f"{prefix}erasure" in names
        return [
            f"{name}.{coll}[{doc.get('_id')}].{path}"
            for name in names
            for coll in mongo[name].list_collection_names()
            for doc in mongo[name][coll].find({})
            for path in readable(doc, needles)
        ]
    finally:
        mongo.close()


def test_portability_request_collects_what_the_subject_provided(
    access: Any, tmp_path: Path
) -> None:
    api, env, headers = access
    request_id = f"REQ-POR-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC).isoformat()
    event = example(
        "request-received.json", request_id=request_id, received_at=now, right="portability"
    )
    publish(env, tmp_path / "portability.json", {**event, "time": now})
    case = wait_json(
        f"{api}/v1/erasure/cases/acc:{request_id}",
        headers,
        lambda c: c["state"] == "closed",
        timeout=150,
    )
    assert case["origin"] == "portability"
    assert set(case["systems"]) == {"crm", "newsletter", "billing"}  # the vendor observed
    reply = httpx.get(f"{api}/v1/requests/{request_id}/package", headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text
    package = zipfile.ZipFile(io.BytesIO(reply.content))
    manifest = json.loads(package.read("manifest.json"))
    assert manifest["right"] == "portability"
    records = json.loads(package.read("crm/records.json"))
    assert records and {r["category"] for r in records} <= {"profile", "contact"}
    assert all(r.get("email") in (EMAIL, None) for r in records)
