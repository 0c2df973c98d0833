"""The data subject's single-use package link: an HMAC-signed, expiring token (pure).

The token names the request, the link and its end (epoch milliseconds), signed with
HMAC-SHA256 under a key derived from the erasure signing secret; nothing in it is personal
data. That it is used once is the package record's business (``links_used``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from shared.errors import GardienError

LABEL = b"gardien access package link v1"


class LinkRefused(GardienError):
    """A link that is malformed or forged."""


class LinkExpired(LinkRefused):
    """A genuine link past its end."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def link_key(secret: bytes) -> bytes:
    """The links' own key, so a signature here is never one of the HTTP connector's."""
    return hmac.new(secret, LABEL, hashlib.sha256).digest()


def issue(key: bytes, request_id: str, link_id: str, expires_ms: int) -> str:
    """A token for ``link_id`` of ``request_id``, valid until ``expires_ms``."""
    body = _b64(f"{request_id}|{link_id}|{expires_ms}".encode())
    return f"{body}.{_b64(hmac.new(key, body.encode(), hashlib.sha256).digest())}"


def verify(key: bytes, token: str, now_ms: int) -> tuple[str, str]:
    """(request id, link id) of a valid token; ``LinkRefused`` saying why otherwise."""
    body, _, signature = token.partition(".")
    try:
        given = _unb64(signature)
        request_id, link_id, expires = _unb64(body).decode().rsplit("|", 2)
        expires_ms = int(expires)
    except (ValueError, UnicodeDecodeError):
        raise LinkRefused("the link is malformed") from None
    wanted = hmac.new(key, body.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(given, wanted):
        raise LinkRefused("the link's signature does not match")
    if now_ms >= expires_ms:
        raise LinkExpired("the link has expired")
    return request_id, link_id
