"""The console's forms: sign in and out, language, and the HTTP actions as forms."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.gateway.console import i18n
from services.gateway.console.web import (
    COOKIE,
    LANG_COOKIE,
    SESSION_SECONDS,
    Session,
    api,
    back,
    console,
    form,
    problem,
    render,
    signed_in,
)

router = APIRouter(include_in_schema=False)
REQUEST_ACTIONS = {
    "identity-verification", "information-request", "information-received",
    "extension", "response", "refusal",
}  # fmt: skip
BREACH_ACTIONS = {"authority-notification", "subjects-notification", "public-communication"}


@router.get("/console/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    return render(request, "login.html", None, error=None)


@router.post("/console/login")
async def login(request: Request) -> Response:
    raw = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (raw.get("api_key") or [""])[-1].strip()
    stored = request.app.state.keys.authenticate(key) if key else None
    if stored is None:
        return render(request, "login.html", None, 401, error=True)
    lang = request.cookies.get(LANG_COOKIE, "fr")
    session = Session(key, stored.name, stored.scopes, lang if lang in i18n.LANGS else "fr")
    sid = console(request).open(session)
    response = back("/console")
    response.set_cookie(
        COOKIE, sid, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
        secure=request.url.scheme == "https", path="/console",
    )  # fmt: skip
    return response


@router.post("/console/logout")
async def logout(request: Request) -> Response:
    session = signed_in(request)
    await form(request, session)
    console(request).close(request)
    response = back("/console/login")
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("/console/lang/{lang}")
async def language(request: Request, lang: str, next: str = "/console") -> Response:
    chosen = lang if lang in i18n.LANGS else "fr"
    session = console(request).find(request)
    if session is not None:
        session.lang = chosen
    response = back(next)
    response.set_cookie(LANG_COOKIE, chosen, samesite="strict", path="/console")
    return response


def _instant(value: str, tz: str) -> str | None:
    """A datetime-local field (the DPO's wall time) as an ISO instant with offset."""
    if not value:
        return None
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        return value  # the API says precisely what is wrong with it
    if local.tzinfo is None:
        local = local.replace(tzinfo=ZoneInfo(tz))
    return local.isoformat()


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _body(fields: dict[str, str], names: tuple[str, ...], tz: str) -> dict[str, Any]:
    """The JSON body of an action from its form fields (empty fields left out)."""
    body: dict[str, Any] = {}
    for name in names:
        value = fields.get(name, "")
        if name in ("at", "performed_at", "aware_at"):
            value = _instant(value, tz) or ""
        if name in ("reasons",):
            if value or name in fields:
                body[name] = _lines(value)
            continue
        if name == "complaint_rights_given":
            body[name] = name in fields
            continue
        if value:
            body[name] = value
    return body


async def _act(
    request: Request,
    session: Session,
    path: str,
    body: dict[str, Any],
    fields: dict[str, str],
    method: str = "POST",
) -> None:
    """Call the action; keep what happened as the next page's message."""
    answer = await api(request, session, method, path, json=body, idem=fields.get("idem"))
    if answer is not None and answer.status_code == 202:
        session.flash.append(("sent", i18n.text(session.lang, "sent")))
    else:
        code = answer.status_code if answer is not None else 503
        session.flash.append(("error", f"{code}: {problem(answer)}"))


@router.post("/console/requests/{request_id}/act/{action}")
async def request_action(request: Request, request_id: str, action: str) -> Response:
    session = signed_in(request)
    fields = await form(request, session)
    if action in REQUEST_ACTIONS:
        names = ("at", "note", "reason", "reasons", "outcome", "complaint_rights_given")
        wanted = {
            "extension": ("at", "note", "reasons"),
            "response": ("at", "note", "complaint_rights_given"),
            "refusal": names[:2] + names[3:],
            "information-request": ("at", "note", "reason"),
        }.get(action, ("at", "note"))
        body = _body(fields, wanted, console(request).timezone)
        await _act(request, session, f"/v1/requests/{request_id}/{action}", body, fields)
    return back(f"/console/requests/{request_id}")


@router.post("/console/cases/{case_id}/systems/{system}/confirm")
async def manual_step(request: Request, case_id: str, system: str) -> Response:
    session = signed_in(request)
    fields = await form(request, session)
    body = _body(fields, ("outcome", "performed_at", "what"), console(request).timezone)
    path = f"/v1/erasure/cases/{case_id}/systems/{system}/manual-confirmation"
    await _act(request, session, path, body, fields)
    return back(fields.get("back") or "/console")


@router.post("/console/breaches/new")
async def new_breach(request: Request) -> Response:
    session = signed_in(request)
    fields = await form(request, session)
    names = ("breach_id", "aware_at", "risk", "approx_subjects", "approx_records")
    body = _body(fields, names, console(request).timezone)
    body["reported_by"] = "controller"
    body["categories"] = [c.strip() for c in fields.get("categories", "").split(",") if c.strip()]
    for name in ("approx_subjects", "approx_records"):  # the API takes JSON integers only
        value = str(body.get(name, "")).strip()
        if value.isdigit():
            body[name] = int(value)
    await _act(request, session, "/v1/breaches", body, fields)
    return back("/console/breaches")


@router.post("/console/breaches/{breach_id}/act/{action}")
async def breach_action(request: Request, breach_id: str, action: str) -> Response:
    session = signed_in(request)
    fields = await form(request, session)
    if action in BREACH_ACTIONS:
        body = _body(fields, ("at", "reasons_for_delay"), console(request).timezone)
        await _act(request, session, f"/v1/breaches/{breach_id}/{action}", body, fields)
    return back("/console/breaches")


@router.post("/console/holds/new")
async def place_hold(request: Request) -> Response:
    session = signed_in(request)
    fields = await form(request, session)
    body = _body(fields, ("hold_id", "matter", "at"), console(request).timezone)
    cats = [c.strip() for c in fields.get("categories", "").split(",") if c.strip()]
    body["scope"] = {"categories": cats}
    await _act(request, session, "/v1/holds", body, fields)
    return back("/console/holds")


@router.post("/console/holds/{hold_id}/release")
async def release_hold(request: Request, hold_id: str) -> Response:
    session = signed_in(request)
    fields = await form(request, session)
    body = _body(fields, ("at",), console(request).timezone)
    await _act(request, session, f"/v1/holds/{hold_id}/release", body, fields)
    return back("/console/holds")


@router.post("/console/audit/verify")
async def verify(request: Request) -> Response:
    session = signed_in(request)
    await form(request, session)
    answer = await api(request, session, "GET", "/v1/audit/verify")
    if answer is not None and answer.status_code == 200:
        report = answer.json()
        console(request).last_verify = {"at": datetime.now(ZoneInfo("UTC")).isoformat(),
                                        "by": session.name, "report": report}  # fmt: skip
    else:
        session.flash.append(("error", problem(answer)))
    return back("/console/audit")
