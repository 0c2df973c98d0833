"""The HTTP connector: commands POSTed to systems that cannot consume Kafka, signed.

Signature: ``X-Gardien-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``
with ``X-Gardien-Timestamp`` (Unix seconds). A system answers 200 with a result
(``{"outcome", "detail"?, "retained_until"?}``) or 202 and later a ``gdpr.erasure.result``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import httpx

from shared.events import CloudEvent

SIGNATURE_HEADER = "X-Gardien-Signature"
TIMESTAMP_HEADER = "X-Gardien-Timestamp"
TOLERANCE_SECONDS = 300


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: bytes, timestamp: str, body: bytes, signature: str, now: float | None = None
) -> bool:
    """True when ``signature`` matches and ``timestamp`` is within the tolerance."""
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError:
        return False
    return age <= TOLERANCE_SECONDS and hmac.compare_digest(
        sign(secret, timestamp, body), signature
    )


@dataclass(frozen=True)
class Reply:
    """What a system said over HTTP: a result now, accepted for later, or an error."""

    result: dict[str, Any] | None = None
    accepted: bool = False
    error: str | None = None


class HttpConnector:
    """Delivers command events with a signed POST."""

    def __init__(self, secret: bytes, timeout: float) -> None:
        self.secret = secret
        self.timeout = timeout

    async def deliver(self, url: str, command: CloudEvent) -> Reply:
        """POST ``command`` to ``url`` and interpret the answer; never raises on HTTP errors."""
        body = command.to_json()
        stamp = str(int(time.time()))
        headers = {
            "content-type": "application/cloudevents+json",
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(self.secret, stamp, body),
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Reply(error=f"{type(exc).__name__} calling the system")
        if response.status_code == 202:
            return Reply(accepted=True)
        if response.status_code != 200:
            return Reply(error=f"HTTP {response.status_code}")
        try:
            payload = response.json()
        except ValueError:
            return Reply(error="the answer is not JSON")
        if not isinstance(payload, dict) or "outcome" not in payload:
            return Reply(error="the answer has no outcome")
        return Reply(result=payload)
