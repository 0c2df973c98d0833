"""Webhook rules: destination policy (no SSRF), event filters, retry schedule, payloads."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import random
import socket
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
# Cloud metadata endpoints that are not link-local everywhere (AWS IPv6, Alibaba).
METADATA = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
# What a webhook payload never carries: chain internals and pseudonymous or sealed data.
NOT_SENT = {"_id", "chain_seq", "sealed", "subject_refs"}


class UrlRefused(ValueError):
    """A webhook destination that policy forbids; the message says why (no secrets)."""


def _allowed(addr: IP, host: str, allow: Iterable[str]) -> bool:
    for entry in allow:
        if entry.casefold() == host.casefold():
            return True
        try:
            if addr in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def address_refused(addr: IP) -> str | None:
    """Why ``addr`` may not receive webhooks, or None when it is a public address."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr in METADATA:
        return "a cloud metadata address"
    for test, name in (
        (addr.is_loopback, "loopback"),
        (addr.is_link_local, "link-local"),
        (addr.is_private, "private"),
        (addr.is_multicast, "multicast"),
        (addr.is_unspecified, "unspecified"),
        (not addr.is_global, "not public"),
    ):
        if test:
            return f"a {name} address"
    return None


async def check_url(url: str, allow: list[str]) -> list[IP]:
    """Resolve ``url``'s host; UrlRefused unless every address is public or allow-listed."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise UrlRefused("the URL must be http(s)://host/...")
    if parts.username or parts.password:
        raise UrlRefused("credentials in the URL are not accepted; the signature authenticates")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        raise UrlRefused(f"the host {host} does not resolve") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for addr in addresses:
        if _allowed(addr, host, allow):
            continue
        reason = address_refused(addr)
        if reason is not None:
            raise UrlRefused(f"{host} resolves to {reason}; ask an operator to allow-list it")
        if parts.scheme != "https":
            raise UrlRefused("public destinations must use https")
    return addresses


def matches(filters: list[str], event_type: str) -> bool:
    """Whether a subscription's filters take ``event_type`` (``prefix.*`` wildcards; [] = all)."""
    if not filters:
        return True
    return any(
        event_type == f or (f.endswith("*") and event_type.startswith(f[:-1])) for f in filters
    )


def delivery_id(sub_id: str, record_id: str) -> str:
    """Stable message id of one record for one subscription (``webhook-id``, kept on retry)."""
    return "msg_" + hashlib.sha256(f"{sub_id}|{record_id}".encode()).hexdigest()[:26]


def retry_delay(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds before the next attempt: base x 4^(n-1), capped, with +-25 % jitter."""
    delay = min(base * 4 ** max(failures - 1, 0), cap)
    return float(delay * rng.uniform(0.75, 1.25))


def payload(record: dict[str, Any]) -> bytes:
    """The JSON body sent for an audit record (no sealed or pseudonymous fields)."""
    data = {k: v for k, v in record.items() if k not in NOT_SENT}
    data["record_id"] = record["_id"]
    at = record["recorded_at"]
    data["recorded_at"] = at.isoformat() if isinstance(at, datetime) else str(at)
    body = {"type": record["type"], "timestamp": data["recorded_at"], "data": data}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
