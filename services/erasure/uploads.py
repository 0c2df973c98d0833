"""Signed, expiring upload URLs: one per export command and attempt (pure).

``PUT <base>/v1/uploads/<command_id>?token=<expires>.<mac>`` where ``mac`` is the hex
HMAC-SHA256, under the upload key (``GARDIEN_ERASURE_UPLOAD_KEY``), of
``"<command_id>|<expires>"`` and ``expires`` a Unix time in seconds. The token names no
person; it lets its holder write that one command's upload until it expires, nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import quote

Verdict = Literal["ok", "missing", "malformed", "wrong", "expired"]
PATH = "/v1/uploads/"


def _mac(key: bytes, command_id: str, expires: int) -> str:
    return hmac.new(key, f"{command_id}|{expires}".encode(), hashlib.sha256).hexdigest()


def token(key: bytes, command_id: str, expires: int) -> str:
    """The token that lets ``command_id``'s data be uploaded until ``expires``."""
    return f"{expires}.{_mac(key, command_id, expires)}"


def check(key: bytes, command_id: str, given: str | None, now: datetime) -> Verdict:
    """What ``given`` is worth for ``command_id`` at ``now`` (the MAC is checked first)."""
    if not given:
        return "missing"
    stamp, _, mac = given.partition(".")
    if not stamp.isdigit() or len(stamp) > 12 or len(mac) != 64:
        return "malformed"
    if not hmac.compare_digest(_mac(key, command_id, int(stamp)), mac):
        return "wrong"
    return "expired" if now.timestamp() >= int(stamp) else "ok"


@dataclass(frozen=True)
class UploadLinks:
    """Makes the upload URL of a command issued at ``now`` (``messages.command_issued``)."""

    key: bytes
    base_url: str
    ttl_seconds: float

    def link(self, command_id: str, now: datetime) -> tuple[str, str]:
        """(URL, expiry as ISO 8601) for ``command_id``."""
        expires = int((now + timedelta(seconds=self.ttl_seconds)).timestamp())
        path = PATH + quote(command_id, safe="")
        url = f"{self.base_url.rstrip('/')}{path}?token={token(self.key, command_id, expires)}"
        return url, datetime.fromtimestamp(expires, UTC).isoformat()
