"""How each reference system answers an ``export`` command: its records, in its own shape.

crm: a JSON array; newsletter: ``{"records": [...]}``; billing: JSON Lines; vendor: a JSON
array with nested objects. Every record names its ``category``. The data go to the
command's upload URL (a streamed PUT); the answer says how many records and bytes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

import httpx

from examples.connected_systems.records import CATALOGUE, Db, Store, matching

SHAPES = {"crm": "array", "newsletter": "object", "billing": "lines", "vendor": "nested"}
CONTENT_TYPE = {"lines": "application/x-ndjson"}
CHUNK = 64 * 1024


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if k != "_id"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def record(category: str, store: Store, doc: dict[str, Any], shape: str) -> dict[str, Any]:
    """One exported record: the document without its database id, and its category."""
    plain = _plain(doc)
    if shape == "nested":  # the vendor groups what it observed under "profile"
        identity = {k: plain.pop(k) for k in list(plain) if k == "email"}
        return {"category": category, "source": store.collection, **identity, "profile": plain}
    return {"category": category, "source": store.collection, **plain}


async def gather(kind: str, db: Db, command: dict[str, Any]) -> list[dict[str, Any]]:
    """The subject's records of the command's categories, each document once (under the
    first category that holds it: the CRM's customer record is both profile and contact)."""
    identifiers = {str(k): str(v) for k, v in (command.get("identifiers") or {}).items()}
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for line in command.get("categories", []):
        category = str(line["category"])
        for store in CATALOGUE[kind].get(category, []):
            for doc in await matching(db, store, identifiers):
                if (store.collection, str(doc["_id"])) not in seen:
                    seen.add((store.collection, str(doc["_id"])))
                    out.append(record(category, store, doc, SHAPES[kind]))
    return out


def encode(records: list[dict[str, Any]], shape: str) -> bytes:
    """The body of the upload in the system's shape."""
    if shape == "lines":
        return b"".join(json.dumps(r).encode() + b"\n" for r in records)
    if shape == "object":
        return json.dumps({"system_version": "4.2", "records": records}).encode()
    return json.dumps(records).encode()


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]


async def upload(url: str, body: bytes, shape: str) -> None:
    """PUT ``body`` to the command's upload URL, streamed; raises on a refusal."""
    headers = {"content-type": CONTENT_TYPE.get(shape, "application/json")}
    async with httpx.AsyncClient(timeout=60) as client:
        reply = await client.put(url, content=_chunks(body), headers=headers)
    if reply.status_code != 201:
        raise RuntimeError(f"upload refused: HTTP {reply.status_code}")


async def export(kind: str, db: Db, command: dict[str, Any]) -> dict[str, Any]:
    """Carry out an export: gather, upload, and the answer (``gdpr.export.result`` data)."""
    records = await gather(kind, db, command)
    if not records:
        return {"outcome": "not_found", "records": 0, "bytes": 0, "detail": "no records"}
    url = command.get("upload_url")
    if not url:
        return {"outcome": "failed", "detail": "the command carries no upload URL"}
    shape = SHAPES[kind]
    body = encode(records, shape)
    await upload(str(url), body, shape)
    return {"outcome": "exported", "records": len(records), "bytes": len(body)}
