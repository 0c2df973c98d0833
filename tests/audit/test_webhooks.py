"""Webhooks: signed the Standard Webhooks way, retried on a fake clock, SSRF refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from services.audit.memory_webhooks import MemoryWebhooks
from tests.audit.conftest import Trail
from tests.support import example


class Receiver:
    """A local HTTP endpoint that answers with scripted statuses and keeps what it got."""

    def __init__(self, host: str) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.statuses.pop(0) if outer.statuses else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver("127.0.0.1")
    yield r
    r.close()


def standard_webhooks_valid(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """An independent reading of the Standard Webhooks spec (symmetric v1 signatures)."""
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body.decode()}"
    expected = base64.b64encode(hmac.new(key, content.encode(), hashlib.sha256).digest())
    for candidate in headers["webhook-signature"].split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return True
    return False


async def _subscribe(trail: Trail, url: str, **extra: Any) -> httpx.Response:
    body = {"url": url, **extra}
    return await trail.http.post("/v1/webhooks", json=body, headers=trail.headers)


async def _round(trail: Trail) -> int:
    async with httpx.AsyncClient() as client:
        sent: int = await trail.app.state.dispatcher.round(client)
        return sent


async def test_signed_delivery_retried_after_failures_then_replayed(
    trail: Trail, receiver: Receiver
) -> None:
    reply = await _subscribe(trail, receiver.url, event_types=["gdpr.request.*"])
    assert reply.status_code == 201, reply.text
    sub = reply.json()
    listed = (await trail.http.get("/v1/webhooks", headers=trail.headers)).json()["items"]
    assert "secret" not in listed[0]  # shown once only
    receiver.statuses = [500, 500]
    await trail.feed(example("request-received.json", request_id="REQ-W-1"))
    await trail.feed(example("breach-detected.json"))  # filtered out

    assert await _round(trail) == 1  # first attempt: 500
    assert await _round(trail) == 0  # nothing due until the back-off has passed
    trail.clock.advance(timedelta(minutes=1))
    assert await _round(trail) == 1  # second attempt: 500
    trail.clock.advance(timedelta(minutes=1))
    assert await _round(trail) == 0  # the delay grew (x4)
    trail.clock.advance(timedelta(hours=1))
    assert await _round(trail) == 1  # third attempt: delivered

    assert len(receiver.got) == 3
    ids = {h["webhook-id"] for h, _ in receiver.got}
    assert len(ids) == 1  # the same message id on every retry
    for headers, body in receiver.got:
        assert standard_webhooks_valid(sub["secret"], headers, body)
        assert not standard_webhooks_valid("whsec_" + "A" * 32, headers, body)
    assert int(receiver.got[-1][0]["webhook-timestamp"]) == int(trail.clock.now().timestamp())
    assert b"alice" not in receiver.got[-1][1]

    log = await trail.http.get(f"/v1/webhooks/{sub['id']}/deliveries", headers=trail.headers)
    [delivery] = log.json()["items"]
    assert delivery["state"] == "delivered"
    assert [a["status"] for a in delivery["log"]] == [500, 500, 200]
    replay = await trail.http.post(
        f"/v1/webhooks/{sub['id']}/deliveries/{delivery['id']}/replay", headers=trail.headers
    )
    assert replay.status_code == 202
    assert await _round(trail) == 1
    assert receiver.got[-1][0]["webhook-id"] == delivery["id"]


async def test_refused_addresses_get_nothing(trail: Trail, receiver: Receiver) -> None:
    other = Receiver("127.0.0.2")  # loopback, but not on the allow-list
    try:
        refused = await _subscribe(trail, other.url)
        assert refused.status_code == 422
        assert "loopback" in refused.json()["detail"]
        for url in ("http://169.254.169.254/latest", "http://10.1.2.3/x", "ftp://example.org"):
            assert (await _subscribe(trail, url)).status_code == 422
        # Checked again at delivery time: a subscription whose address changed is refused.
        sub = (await _subscribe(trail, receiver.url)).json()
        webhooks = trail.repos.webhooks
        assert isinstance(webhooks, MemoryWebhooks)
        webhooks.docs[sub["id"]]["url"] = other.url
        await trail.feed(example("request-received.json", request_id="REQ-W-2"))
        assert await _round(trail) == 1
        assert other.got == []
        assert receiver.got == []
        log = await trail.http.get(f"/v1/webhooks/{sub['id']}/deliveries", headers=trail.headers)
        assert "refused" in log.json()["items"][0]["last_error"]
    finally:
        other.close()


async def test_failing_subscriber_is_disabled_with_an_audit_record(
    trail: Trail, receiver: Receiver
) -> None:
    sub = (await _subscribe(trail, receiver.url)).json()
    receiver.statuses = [500] * 10
    for i in range(3):
        await trail.feed(example("request-received.json", request_id=f"REQ-W-D{i}"))
    assert await _round(trail) == 3
    state = (await trail.http.get(f"/v1/webhooks/{sub['id']}", headers=trail.headers)).json()
    assert state["state"] == "disabled"
    params = {"type": "gardien.audit.webhook_disabled"}
    found = await trail.http.get("/v1/audit/events", params=params, headers=trail.headers)
    [record] = found.json()["items"]
    assert record["data"]["webhook_id"] == sub["id"]
    verified = (await trail.http.get("/v1/audit/verify", headers=trail.headers)).json()
    assert verified["ok"], verified
    deleted = await trail.http.delete(f"/v1/webhooks/{sub['id']}", headers=trail.headers)
    assert deleted.status_code == 204


async def test_webhook_admin_scope_is_required(trail: Trail, settings: Any) -> None:
    from tests.support import api_key

    reader = api_key(settings, "audit:read")
    assert (await trail.http.get("/v1/webhooks", headers=reader)).status_code == 403
