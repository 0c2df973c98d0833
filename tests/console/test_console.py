"""The console without a browser: sign-in session, CSRF on every form, forms become actions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from services.gateway.app import create_app
from services.gateway.console import i18n
from shared.auth import KeyStore
from shared.settings import Settings


class Services(httpx.AsyncBaseTransport):
    """Every service at once: records what the console sent, answers like an action."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        if request.method == "POST":
            return httpx.Response(
                202, json={"event_id": "e", "type": "t", "key": "k", "actor": "a"}
            )
        if request.url.path == "/v1/holds":
            return httpx.Response(200, json=[])
        problem = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no"}
        return httpx.Response(404, json=problem)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Settings, str, Services]:
    keys = tmp_path / "keys.json"
    key = KeyStore(keys).create("office-manager", ["holds:write", "audit:read"])
    names = ("intake", "deadlines", "erasure", "audit")
    urls = {f"gardien_{n}_url": f"http://{n}" for n in names}
    return Settings(gardien_api_keys_file=keys, **urls), key, Services()  # type: ignore[arg-type]


async def test_sign_in_csrf_and_a_form_sent_as_an_action(
    setup: tuple[Settings, str, Services],
) -> None:
    settings, key, services = setup
    app = create_app(settings, transport=services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as web:
            first = await web.get("/console")
            assert first.status_code == 303 and first.headers["location"] == "/console/login"
            bad = await web.post("/console/login", data={"api_key": "gdn_x_y"})
            assert bad.status_code == 401
            ok = await web.post("/console/login", data={"api_key": key})
            assert ok.status_code == 303
            cookie = ok.headers["set-cookie"].lower()
            assert (
                "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
            )

            page = await web.get("/console/holds")
            assert page.status_code == 200 and "office-manager" in page.text
            assert "default-src 'self'" in page.headers["content-security-policy"]
            assert "http://" not in page.text and "https://" not in page.text  # no outside asset
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf is not None

            form = {"matter": "litige-1", "categories": "billing, payment", "idem": "k1"}
            refused = await web.post("/console/holds/new", data=form)
            assert refused.status_code == 403 and services.sent[-1].method == "GET"
            sent = await web.post("/console/holds/new", data={**form, "csrf": csrf.group(1)})
            assert sent.status_code == 303
            call = services.sent[-1]
            assert (call.method, call.url.host, call.url.path) == ("POST", "deadlines", "/v1/holds")
            assert call.headers["x-api-key"] == key and call.headers["idempotency-key"] == "k1"
            body = json.loads(call.content)
            assert body == {"matter": "litige-1", "scope": {"categories": ["billing", "payment"]}}

            missing = await web.get("/console/register")
            assert "GET /v1/register" in missing.text  # not available: said so

            await web.post("/console/logout", data={"csrf": csrf.group(1)})
            assert (await web.get("/console/holds")).status_code == 303


def test_dates_in_the_dpo_zone_in_both_languages() -> None:
    assert i18n.when("2027-03-05T15:45:00Z", "fr", "Europe/Paris") == "5 mars 2027 16:45"
    assert i18n.when("2027-07-05T15:45:00+00:00", "en", "Europe/Paris") == "5 Jul 2027 17:45"
    assert i18n.day("2027-12-01", "fr") == "1 déc. 2027"
    assert i18n.left(-3900, "en") == "1 h 05 min overdue"
    assert i18n.text("fr", "holds") == "Gels" and i18n.text("en", "holds") == "Holds"
