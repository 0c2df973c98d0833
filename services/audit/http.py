"""Audit's HTTP face: query, export, report, verify and checkpoints of the trail."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from services.audit import views
from services.audit.checkpoints import public_key
from services.audit.report import compliance_report
from services.audit.repository import Selection
from services.audit.usecases import Auditor
from services.audit.verification import Verifier
from shared.apidoc import CSV, NDJSON, IsoInstant, as_utc
from shared.auth import Scope, StoredKey, require
from shared.problems import responses

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=responses())
MAX_LIMIT = 500
REVEAL_SCOPES = {Scope.AUDIT_REVEAL.value, Scope.ADMIN.value}
Reader = Annotated[StoredKey, require(Scope.AUDIT_READ)]


class AuditPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


class Filters(BaseModel):
    """What records to select; every filter is served by a single-field index."""

    subject: str | None = None
    request_id: str | None = None
    case_id: str | None = None
    breach_id: str | None = None
    type: str | None = None
    from_: datetime | None = None
    to: datetime | None = None


def filters(
    subject: Annotated[
        str | None, Query(max_length=256, description="An identifier, e.g. an e-mail")
    ] = None,
    request_id: Annotated[str | None, Query(max_length=128)] = None,
    case_id: Annotated[str | None, Query(max_length=128)] = None,
    breach_id: Annotated[str | None, Query(max_length=128)] = None,
    type: Annotated[str | None, Query(max_length=128)] = None,
    from_: Annotated[IsoInstant | None, Query(alias="from")] = None,
    to: Annotated[IsoInstant | None, Query()] = None,
) -> Filters:
    return Filters(
        subject=subject,
        request_id=request_id,
        case_id=case_id,
        breach_id=breach_id,
        type=type,
        from_=from_,
        to=to,
    )


Selected = Annotated[Filters, Depends(filters)]


def _auditor(request: Request) -> Auditor:
    auditor: Auditor = request.app.state.auditor
    return auditor


def _check_reveal(key: StoredKey, reveal: bool) -> None:
    if reveal and not key.scopes & REVEAL_SCOPES:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "revealing personal fields needs scope audit:reveal (or admin)",
        )


async def _query(auditor: Auditor, f: Filters) -> Selection:
    # A subject goes through the scalar subject index (see mongo.SUBJECT_INDEX), then by _id.
    ids = None
    if f.subject:
        ids = await auditor.repos.records.records_of_subject(auditor.subject_ref(f.subject))
    return Selection(ids, f.request_id, f.case_id, f.breach_id, f.type, f.from_, f.to)


CURSOR = r"^[0-9]{1,14}\.[\s\S]+$"  # "<recorded_at, ms since the epoch>.<record id>"


def _encode(doc: dict[str, Any]) -> str:
    """The position after ``doc``; every string of the ``CURSOR`` pattern is one."""
    at = as_utc(doc["recorded_at"])
    return f"{int(at.timestamp() * 1000)}.{doc['_id']}"


def _decode(cursor: str) -> tuple[datetime, str]:
    ms, rid = cursor.split(".", 1)
    return datetime.fromtimestamp(int(ms) / 1000, UTC), rid


async def _page(
    auditor: Auditor, query: Selection, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    after = _decode(cursor) if cursor else None
    docs = await auditor.repos.records.page(query, after, limit + 1)
    more = len(docs) > limit
    docs = docs[:limit]
    return docs, _encode(docs[-1]) if more else None


@router.get("/events")
async def list_events(
    request: Request,
    key: Reader,
    selected: Selected,
    cursor: Annotated[
        str | None,
        Query(max_length=512, pattern=CURSOR, description="`next_cursor` of the page before"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    reveal: Annotated[bool, Query(description="Open sealed personal fields (admin)")] = False,
) -> AuditPage:
    """Audit records, oldest first, filtered by subject, request, case, breach, type, time.

    Personal fields are sealed; ``reveal=true`` (scope ``admin``) opens those whose
    subject key still exists, and marks the others ``shredded``.
    """
    _check_reveal(key, reveal)
    auditor = _auditor(request)
    docs, nxt = await _page(auditor, await _query(auditor, selected), cursor, limit)
    keys = await views.live_keys(auditor.repos.keys, docs) if reveal else None
    if reveal:
        read = {"records": [str(d["_id"]) for d in docs]}
        await _record_access(auditor, key, "gardien.audit.revealed", selected, read)
    return AuditPage(items=[views.view(d, keys) for d in docs], next_cursor=nxt)


EXPORTED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Every selected record: JSON Lines (`format=jsonl`, one record a line) "
        "or CSV (`format=csv`, UTF-8 with a byte-order mark), as an attachment.",
        "content": {
            NDJSON: {"schema": {"type": "string"}},
            CSV: {"schema": {"type": "string"}},
        },
    }
}


@router.get("/export", response_class=StreamingResponse, responses=EXPORTED)
async def export(
    request: Request,
    key: Reader,
    selected: Selected,
    format: Literal["jsonl", "csv"] = "jsonl",
    reveal: bool = False,
) -> StreamingResponse:
    """Stream every selected record as JSON Lines or CSV (UTF-8 with BOM, for spreadsheets)."""
    _check_reveal(key, reveal)
    auditor = _auditor(request)
    query = await _query(auditor, selected)
    asked = {"format": format, "reveal": reveal}
    await _record_access(auditor, key, "gardien.audit.exported", selected, asked)

    async def rows() -> AsyncIterator[bytes]:
        if format == "csv":
            yield "\ufeff".encode() + _csv_line(list(views.CSV_COLUMNS))
        cursor = None
        while True:
            docs, cursor = await _page(auditor, query, cursor, MAX_LIMIT)
            keys = await views.live_keys(auditor.repos.keys, docs) if reveal else None
            for doc in docs:
                shown = views.view(doc, keys)
                if format == "csv":
                    yield _csv_line(views.csv_row(shown))
                else:
                    yield json.dumps(shown, sort_keys=True, default=str).encode() + b"\n"
            if cursor is None:
                return

    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    name = f"gardien-audit.{format}"
    headers = {"content-disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(rows(), media_type=media, headers=headers)


async def _record_access(
    auditor: Auditor, key: StoredKey, event_type: str, selected: Filters, what: dict[str, Any]
) -> None:
    """Put who read what in the trail: the key (name, id, scopes), the filters, what was read.

    The subject filter is kept as its keyed reference, never as the identifier typed in.
    """
    asked = selected.model_dump(exclude_none=True, mode="json")
    if "subject" in asked:
        asked["subject"] = auditor.subject_ref(asked["subject"])
    data = {
        "key": {"id": key.key_id, "name": key.name, "scopes": sorted(key.scopes)},
        "filters": asked,
        **what,
    }
    await auditor.record_local(f"access:{uuid.uuid4().hex}", event_type, data)


def _csv_line(cells: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue().encode()


@router.get("/requests/{request_id}/report", responses=responses(404))
async def request_report(request: Request, request_id: str, key: Reader) -> dict[str, Any]:
    """Compliance report of one request: received, due, extended, responded, late, systems."""
    auditor = _auditor(request)
    records = auditor.repos.records
    docs = await records.naming("request_id", [request_id])
    if not docs:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no audited event names this request")
    cases = {d["refs"]["case_id"] for d in docs if "case_id" in d.get("refs", {})}
    cases |= {f"req:{request_id}", f"obj:{request_id}"}
    seen = {d["_id"] for d in docs}
    docs += [d for d in await records.naming("case_id", sorted(cases)) if d["_id"] not in seen]
    today = auditor.clock.now().date()
    return compliance_report(request_id, docs, today)


@router.get("/verify")
async def verify(
    request: Request,
    key: Reader,
    chain: Annotated[str | None, Query(max_length=300)] = None,
    from_checkpoint: bool = False,
) -> dict[str, Any]:
    """Verify the hash chains and signed checkpoints; names the first bad record of each."""
    auditor = _auditor(request)
    repos = auditor.repos
    batch = request.app.state.audit_settings.verify_batch
    verifier = Verifier(repos, (await public_key(repos.keys)).raw, batch)
    report = await verifier.run(from_checkpoint=from_checkpoint, only=chain)
    return report.as_dict()


@router.get("/checkpoints")
async def checkpoints(
    request: Request,
    key: Reader,
    after: Annotated[str | None, Query(max_length=400, description="Last id seen")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """Signed chain heads and the public key that verifies them, for a third party."""
    repos = _auditor(request).repos
    found = await repos.checkpoints.page(after, limit)
    items = [{**{k: v for k, v in d.items() if k != "_id"}, "id": d["_id"]} for d in found]
    return {
        "public_key": (await public_key(repos.keys)).export(),
        "items": items,
        "next_after": items[-1]["id"] if len(items) == limit else None,
    }


@router.post("/checkpoints", dependencies=[require(Scope.ADMIN)], status_code=201)
async def sign_now(request: Request) -> dict[str, Any]:
    """Sign every chain head that moved since its last checkpoint, now."""
    made = await request.app.state.checkpointer.sign_heads()
    return {"signed": len(made), "items": [{**d, "id": d.pop("_id")} for d in made]}
