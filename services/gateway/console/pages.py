"""The console's pages: each reads the services' APIs with the signed-in key."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.gateway.console import i18n
from services.gateway.console.web import api, console, data, render, secure, signed_in

router = APIRouter(include_in_schema=False)
FINAL = {"responded", "partly_refused", "refused", "closed"}
SOON_DAYS = 7


def _today(request: Request) -> date:
    return datetime.now(ZoneInfo(console(request).timezone)).date()


def _days_left(item: dict[str, Any], today: date) -> int | None:
    due = item.get("effective_due_date") or item.get("due_date")
    return (date.fromisoformat(due) - today).days if due else None


def _seconds_left(iso: str | None) -> float | None:
    at = i18n.parse(iso)
    return None if at is None else (at - datetime.now(UTC)).total_seconds()


def _breach_rows(breaches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for b in breaches:
        for which in ("authority", "subjects"):
            clock = b.get(which)
            if clock:
                rows.append({"breach_id": b["breach_id"], "which": which, **clock,
                             "seconds": _seconds_left(clock.get("due_at"))})  # fmt: skip
    return rows


@router.get("/console", response_class=HTMLResponse)
async def today(request: Request) -> Response:
    session = signed_in(request)
    day = _today(request)
    page = await data(request, session, "/v1/requests", limit=500) or {"items": []}
    due = []
    for item in page["items"]:
        left = _days_left(item, day)
        if item["status"] not in FINAL and left is not None and left <= SOON_DAYS:
            due.append({**item, "days_left": left})
    due.sort(key=lambda i: i["days_left"])
    breaches = await data(request, session, "/v1/breaches") or []
    clocks = [r for r in _breach_rows(breaches) if r.get("base") in ("open", "paused")]
    horizon = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    purges = await data(
        request, session, "/v1/deadlines", kind="retention", state=["open", "approaching"],
        due_before=horizon,
    )  # fmt: skip
    waiting = []
    for state in ("open", "escalated"):
        cases = await data(request, session, "/v1/erasure/cases", state=state) or {"items": []}
        for case in cases["items"]:
            for name, part in case["systems"].items():
                if part["outcome"] not in ("erased", "anonymised", "retained", "not_found"):
                    waiting.append({"case": case, "system": name, "part": part})
    return render(
        request, "today.html", session, due=due, clocks=clocks,
        purges=(purges or {}).get("items", []), waiting=waiting,
    )  # fmt: skip


@router.get("/console/requests", response_class=HTMLResponse)
async def requests(request: Request) -> Response:
    session = signed_in(request)
    day = _today(request)
    page = await data(request, session, "/v1/requests", limit=500) or {"items": []}
    items = [{**i, "days_left": _days_left(i, day)} for i in page["items"]]
    return render(request, "requests.html", session, items=items)


@router.get("/console/requests/{request_id}", response_class=HTMLResponse)
async def one_request(request: Request, request_id: str) -> Response:
    session = signed_in(request)
    item = await data(request, session, f"/v1/requests/{request_id}")
    if item is None:
        return render(request, "missing.html", session, 404, what=request_id)
    events = await data(request, session, "/v1/audit/events", request_id=request_id, limit=200)
    cases = []
    for kind, report in (item.get("progress") or {}).items():
        case_id = report.get("case_id")
        case = await data(request, session, f"/v1/erasure/cases/{case_id}") if case_id else None
        cases.append({"kind": kind, "report": report, "case": case})
    return render(
        request, "request.html", session, item=item, cases=cases,
        events=(events or {}).get("items"), days_left=_days_left(item, _today(request)),
    )  # fmt: skip


@router.get("/console/breaches", response_class=HTMLResponse)
async def breaches(request: Request) -> Response:
    session = signed_in(request)
    found = await data(request, session, "/v1/breaches") or []
    for b in found:
        for which in ("authority", "subjects"):
            if b.get(which):
                b[which]["seconds"] = _seconds_left(b[which].get("due_at"))
    return render(request, "breaches.html", session, breaches=found)


@router.get("/console/holds", response_class=HTMLResponse)
async def holds(request: Request) -> Response:
    session = signed_in(request)
    found = await data(request, session, "/v1/holds")
    return render(request, "holds.html", session, holds=found)


@router.get("/console/systems", response_class=HTMLResponse)
async def systems(request: Request) -> Response:
    session = signed_in(request)
    ready = await request.app.state.readiness.state()
    registry = await data(request, session, "/v1/erasure/systems")
    counts: dict[str, dict[str, int]] = {}
    for state in ("open", "escalated"):
        cases = await data(request, session, "/v1/erasure/cases", state=state) or {"items": []}
        for case in cases["items"]:
            for name, part in case["systems"].items():
                row = counts.setdefault(name, {"waiting": 0, "escalated": 0, "failed": 0})
                row["waiting"] += part["outcome"] is None
                row["escalated"] += part["escalated_at"] is not None
                row["failed"] += part["outcome"] == "failed"
    return render(request, "systems.html", session, ready=ready, registry=registry, counts=counts)


@router.get("/console/audit", response_class=HTMLResponse)
async def audit(request: Request) -> Response:
    session = signed_in(request)
    checkpoints = await data(request, session, "/v1/audit/checkpoints", limit=10_000)
    items = (checkpoints or {}).get("items") or []
    last = max(items, key=lambda c: str(c.get("at", "")), default=None)
    return render(
        request, "audit.html", session, last=last, count=len(items),
        verified=console(request).last_verify, readable=checkpoints is not None,
    )  # fmt: skip


@router.get("/console/webhooks", response_class=HTMLResponse)
async def webhooks(request: Request) -> Response:
    session = signed_in(request)
    found = await data(request, session, "/v1/webhooks")
    rows = []
    for hook in (found or {}).get("items", []):
        found_d = await data(request, session, f"/v1/webhooks/{hook['id']}/deliveries", limit=200)
        items = (found_d or {}).get("items", [])
        failing = [d for d in items if d.get("state") == "failed" or (
            d.get("state") == "pending" and int(d.get("attempts") or 0) > 0)]  # fmt: skip
        rows.append({"hook": hook, "failing": failing})
    return render(request, "webhooks.html", session, rows=rows, readable=found is not None)


@router.get("/console/register", response_class=HTMLResponse)
async def register(request: Request) -> Response:
    session = signed_in(request)
    found = await data(request, session, "/v1/register")
    return render(request, "register.html", session, register=found, rows=_rows(found))


def _rows(found: Any) -> list[dict[str, Any]]:
    """The register's entries: the list itself, or the first list of objects in it."""
    if isinstance(found, dict):
        found = next((v for v in found.values() if isinstance(v, list)), [])
    return [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []


@router.get("/console/register.csv")
async def register_csv(request: Request) -> Response:
    session = signed_in(request)
    answer = await api(request, session, "GET", "/v1/register", params={"format": "csv"})
    if answer is None or answer.status_code != 200:
        return render(request, "register.html", session, 404, register=None)
    return secure(Response(
        answer.content, media_type="text/csv",
        headers={"content-disposition": 'attachment; filename="register.csv"'},
    ))  # fmt: skip
