"""What every console page shares: sessions, CSRF, templates, calls to the API."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.gateway.console import i18n

HERE = Path(__file__).parent
COOKIE = "gardien_console"
LANG_COOKIE = "gardien_lang"
SESSION_SECONDS = 8 * 3600
HEADERS = {
    "content-security-policy": "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
)


@dataclass
class Session:
    """A signed-in browser: the key it acts with (kept in memory only), its CSRF token."""

    key: str
    name: str
    scopes: frozenset[str]
    lang: str = "fr"
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    started: float = field(default_factory=time.monotonic)
    flash: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Console:
    """The console's state in the gateway process: sessions and the last verification."""

    timezone: str
    sessions: dict[str, Session] = field(default_factory=dict)
    last_verify: dict[str, Any] | None = None

    def open(self, session: Session) -> str:
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = session
        return sid

    def find(self, request: Request) -> Session | None:
        sid = request.cookies.get(COOKIE, "")
        session = self.sessions.get(sid)
        if session and time.monotonic() - session.started > SESSION_SECONDS:
            self.sessions.pop(sid, None)
            return None
        return session

    def close(self, request: Request) -> None:
        self.sessions.pop(request.cookies.get(COOKIE, ""), None)


def console(request: Request) -> Console:
    found: Console = request.app.state.console
    return found


def lang_of(request: Request, session: Session | None) -> str:
    if session is not None:
        return session.lang
    cookie = request.cookies.get(LANG_COOKIE, "fr")
    return cookie if cookie in i18n.LANGS else "fr"


def signed_in(request: Request) -> Session:
    """The session, or a redirect to the sign-in page."""
    session = console(request).find(request)
    if session is None:
        raise HTTPException(303, headers={"location": "/console/login"})
    return session


def render(
    request: Request, name: str, session: Session | None, status: int = 200, **data: Any
) -> HTMLResponse:
    lang = lang_of(request, session)
    tz = console(request).timezone
    flash, refresh = [], False
    if session is not None:
        flash, session.flash = session.flash, []
        refresh = any(kind == "sent" for kind, _ in flash)
    body = templates.get_template(name).render(
        t=lambda key: i18n.text(lang, key),
        when=lambda v: i18n.when(v, lang, tz),
        day=lambda v: i18n.day(v, lang),
        left=lambda s: i18n.left(s, lang),
        lang=lang,
        tz=tz,
        session=session,
        flash=flash,
        refresh=refresh,
        path=request.url.path,
        idem=secrets.token_urlsafe(16),
        **data,
    )
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def back(to: str) -> RedirectResponse:
    return RedirectResponse(to if to.startswith("/console") else "/console", 303, headers=HEADERS)


async def form(request: Request, session: Session) -> dict[str, str]:
    """The posted form (URL-encoded), after its CSRF token is checked."""
    raw = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    fields = {k: v[-1].strip() for k, v in raw.items()}
    if not secrets.compare_digest(fields.get("csrf", ""), session.csrf):
        raise HTTPException(403, "the form's CSRF token is missing or stale; reload the page")
    return fields


async def api(
    request: Request,
    session: Session,
    method: str,
    path: str,
    *,
    params: Any = None,
    json: Any = None,
    idem: str | None = None,
) -> httpx.Response | None:
    """Call the API with the session's key through the gateway's client (None: no route)."""
    from services.gateway.app import owner

    base = owner(request.app.state.routes, path, request.app.state.rules)
    if base is None:
        return None
    headers = {"X-API-Key": session.key}
    if idem:
        headers["Idempotency-Key"] = idem
    client: httpx.AsyncClient = request.app.state.client
    try:
        return await client.request(
            method, base + path, params=params, json=json, headers=headers, timeout=10
        )
    except httpx.HTTPError:
        return None


async def data(request: Request, session: Session, path: str, **params: Any) -> Any:
    """The JSON of a GET, or None when it is not available (no route, error, no scope)."""
    answer = await api(request, session, "GET", path, params=params or None)
    if answer is None or answer.status_code != 200:
        return None
    return answer.json()


def problem(answer: httpx.Response | None) -> str:
    """The API's reason for refusing, as one line."""
    if answer is None:
        return "the owning service is unreachable"
    try:
        detail = answer.json().get("detail")
    except ValueError:
        return f"HTTP {answer.status_code}"
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}" for d in detail
        )
    return f"{detail}"


def secure(response: Response) -> Response:
    response.headers.update(HEADERS)
    return response
