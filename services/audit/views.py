"""How records are shown: sealed parts listed, or opened for an authorised reader."""

from __future__ import annotations

import copy
import json
from typing import Any

from services.audit import crypto, domain
from services.audit.repository import KeyRepository
from shared.apidoc import as_utc

CSV_COLUMNS = (
    "record_id",
    "recorded_at",
    "event_time",
    "type",
    "kind",
    "chain",
    "seq",
    "topic",
    "partition",
    "offset",
    "event_id",
    "source",
    "request_id",
    "case_id",
    "breach_id",
    "subject_refs",
    "data",
    "sealed_fields",
    "hash",
    "prev_hash",
)


async def live_keys(store: KeyRepository, docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The key documents the sealed parts of ``docs`` need, in one query."""
    kids = sorted({str(p["kid"]) for d in docs for p in d.get("sealed") or []})
    return await store.subject_keys(kids)


def view(doc: dict[str, Any], keys: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """A record for the API; with ``keys``, sealed parts are opened where the key lives."""
    shown = {k: v for k, v in doc.items() if k not in {"_id", "chain_seq", "sealed"}}
    shown["record_id"] = doc["_id"]
    shown["recorded_at"] = as_utc(doc["recorded_at"]).isoformat()  # naive from nx-27017
    fields = []
    if keys is not None:
        shown["data"] = copy.deepcopy(doc.get("data") or {})
    for part in doc.get("sealed") or []:
        state = "sealed" if "ct" in part else "shredded"  # no ciphertext: never kept
        if keys is not None and "ct" in part:
            state = "shredded"
            key = keys.get(str(part["kid"])) or {}
            live = key.get("key") and int(key.get("gen", 1)) == int(part["gen"])
            if live:
                aad = f"{doc['_id']}|{part['path']}|{part['kid']}|{part['gen']}"
                value = crypto.unseal(crypto.unb64(str(key["key"])), part, aad)
                domain.put(shown["data"], str(part["path"]), value)
                state = "revealed"
        fields.append({"path": part["path"], "state": state})
    shown["sealed_fields"] = fields
    return shown


def csv_safe(value: Any) -> str:
    """A spreadsheet cell: JSON for structures, formulas neutralised (CSV injection)."""
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    else:
        text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_row(shown: dict[str, Any]) -> list[str]:
    refs = shown.get("refs") or {}
    row = {
        **shown,
        "request_id": refs.get("request_id"),
        "case_id": refs.get("case_id"),
        "breach_id": refs.get("breach_id"),
        "subject_refs": ";".join(shown.get("subject_refs") or []),
        "sealed_fields": ";".join(f"{f['path']}={f['state']}" for f in shown["sealed_fields"]),
    }
    return [csv_safe(row.get(c)) for c in CSV_COLUMNS]
