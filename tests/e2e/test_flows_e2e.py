"""The example flows through `gardien up --with-reference-systems`, as a user would run them.

An erasure request removes the subject from the reference CRM and newsletter databases,
keeps invoices restricted, closes the case; the request, its deadline and every step are
visible through the API; the audit trail verifies, is found by e-mail, exports as CSV, and
a local webhook receiver gets deliveries it can verify.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests.e2e.conftest import broker_of_its_own, start_up, stop_up, up_env
from tests.support import REPO, StackInfo, example

pytestmark = pytest.mark.e2e
EMAIL, CUSTOMER = "alice.martin@example.org", "C-1042"
AUDIT_CATCH_UP = 120  # seconds the audit may need behind the case's close on a loaded machine


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every delivery."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks: v1 = base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(sig == f"v1,{expected}" for sig in headers["webhook-signature"].split())


@pytest.fixture(scope="module")
def flows(embedded_stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("flows")
    with broker_of_its_own(home) as bootstrap:
        env = up_env(
            bootstrap,
            embedded_stack.mongodb_uri,
            GARDIEN_AUDIT_WEBHOOK_POLL_SECONDS="0.2",
            # Data of their own: other e2e tests erase the same reference customer on this server.
            REFSYS_DB_PREFIX=f"refsys_flows_{uuid.uuid4().hex[:6]}_",
        )
        proc, api = start_up(home, env, extra_args=["--with-reference-systems"])
        try:
            yield home, api, env, (home / "admin-api-key").read_text().strip()
        finally:
            stop_up(proc)


def wait_json(url: str, headers: dict[str, str], done: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        reply = httpx.get(url, headers=headers, timeout=5)
        if reply.status_code == 200:
            last = reply.json()
            if done(last):
                return last
        time.sleep(0.2)
    raise AssertionError(f"{url} never reached the expected state; last: {last}")


def test_erasure_flow_end_to_end(flows: Any, tmp_path: Path) -> None:
    _, api, env, key = flows
    headers = {"X-API-Key": key}
    receiver = Receiver()
    hook = httpx.post(
        f"{api}/v1/webhooks",
        headers=headers,
        timeout=10,
        json={"url": receiver.url, "event_types": ["gardien.erasure.case.*"]},
    )
    assert hook.status_code == 201, hook.text
    secret = hook.json()["secret"]

    request_id = f"REQ-FLOW-{uuid.uuid4().hex[:6]}"
    event = example("request-erasure-received.json", request_id=request_id)
    (tmp_path / "erasure.json").write_text(json.dumps(event))
    published = subprocess.run(
        [sys.executable, "-m", "gardien", "publish", str(tmp_path / "erasure.json")],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert published.returncode == 0, published.stderr.decode()

    case = wait_json(
        f"{api}/v1/erasure/cases/req:{request_id}",
        headers,
        lambda c: c["state"] == "closed",
        timeout=90,
    )
    assert set(case["systems"]) >= {"crm", "newsletter", "billing", "vendor"}

    mongo = MongoClient(env["MONGODB_URI"], tz_aware=True)
    try:
        refsys = env["REFSYS_DB_PREFIX"]
        crm, news, billing = (
            mongo[f"{refsys}crm"],
            mongo[f"{refsys}newsletter"],
            mongo[f"{refsys}billing"],
        )
        assert crm["customers"].count_documents({"email": EMAIL}) == 0
        assert news["subscribers"].count_documents({"email": EMAIL}) == 0
        kept = list(billing["invoices_restricted"].find({"customer_id": CUSTOMER}))
        assert kept and all(doc.get("retain_until") for doc in kept)
    finally:
        mongo.close()

    request = wait_json(
        f"{api}/v1/requests/{request_id}", headers, lambda r: r.get("progress"), timeout=30
    )
    assert request["due_date"] == "2027-04-05"
    deadlines = httpx.get(
        f"{api}/v1/deadlines", headers=headers, timeout=10, params={"kind": "request", "limit": 500}
    ).json()
    assert any(request_id in json.dumps(t) for t in deadlines["items"])

    # The audit service may still be working through the run's records when the case
    # closes: read the subject's whole trail, page by page, until the request's own record
    # is in it.
    def subject_trail() -> list[dict[str, Any]]:
        trail: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"subject": EMAIL, "limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = httpx.get(
                f"{api}/v1/audit/events", headers=headers, timeout=10, params=params
            ).json()
            trail += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return trail

    deadline = time.monotonic() + AUDIT_CATCH_UP
    while not any(i.get("event_id") == event["id"] for i in subject_trail()):
        assert time.monotonic() < deadline, "the request never appeared in the subject's trail"
        time.sleep(1)
    export = httpx.get(
        f"{api}/v1/audit/export",
        headers=headers,
        timeout=30,
        params={"format": "csv", "request_id": request_id},
    )
    rows = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert export.status_code == 200 and rows
    assert EMAIL not in export.text

    verify = subprocess.run(
        [sys.executable, "-m", "gardien", "audit", "verify"],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout.decode() + verify.stderr.decode()

    deadline = time.monotonic() + AUDIT_CATCH_UP
    while time.monotonic() < deadline and not any(
        b"gardien.erasure.case.closed" in body for _, body in receiver.deliveries
    ):
        time.sleep(0.2)
    assert receiver.deliveries, "no webhook delivery arrived"
    for delivery_headers, body in receiver.deliveries:
        assert verify_standard_webhook(secret, delivery_headers, body)
