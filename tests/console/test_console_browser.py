"""The DPO's console in a real headless Chromium (Debian's), against `gardien up`.

Sign in; find a request due in 3 days and extend it; record a late breach notification and
be asked for the reasons; place and release a hold; confirm a manual erasure step and see the
case close; download the register as CSV. With GARDIEN_CONSOLE_SCREENSHOTS=1 the pages are
saved to docs/console/ (the pictures of docs/console.md).
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.support import REPO, example

CHROMIUM = Path(os.environ.get("GARDIEN_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PARIS = ZoneInfo("Europe/Paris")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}: `make browser` installs Debian's (apt-get, as root)",
    ),
]
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")


@pytest.fixture(scope="module")
def page(up: Any) -> Iterator[Any]:
    profile = tempfile.mkdtemp(prefix="gardien-chromium-")
    with playwright.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,  # a fresh user-data-dir per run
            executable_path=str(CHROMIUM),
            args=ARGS,
            viewport={"width": 1280, "height": 900},
            accept_downloads=True,
            locale="fr-FR",
        )
        context.set_default_timeout(20_000)
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def shot(page: Any, name: str) -> None:
    if os.environ.get("GARDIEN_CONSOLE_SCREENSHOTS"):
        target = REPO / "docs" / "console"
        target.mkdir(exist_ok=True)
        page.screenshot(path=str(target / f"{name}.png"), full_page=True)


def local(at: datetime) -> str:
    """A datetime-local field's value: the DPO's wall time."""
    return at.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M")


def until_text(page: Any, url: str, selector: str, wanted: str, tries: int = 40) -> str:
    """Reload ``url`` until ``selector`` shows ``wanted`` (events are applied within moments)."""
    for _ in range(tries):
        page.goto(url)
        found = page.locator(selector).first.inner_text()
        if wanted in found:
            return str(found)
        page.wait_for_timeout(500)
    raise AssertionError(f"{selector} never showed {wanted!r}; last: {found!r}")


def submit(api: str, key: str, body: dict[str, Any]) -> None:
    r = httpx.post(f"{api}/v1/requests", json=body, headers={"X-API-Key": key}, timeout=10)
    assert r.status_code == 202, r.text


def test_the_dpo_console(up: Any, page: Any) -> None:
    api, key = up
    token = uuid.uuid4().hex[:6]
    now = datetime.now(UTC)
    # A request due in 3 days: received one month before (today + 3 days), in Paris.
    soon = f"REQ-SOON-{token}"
    target = now.astimezone(PARIS) + timedelta(days=3)
    month_before = (
        target.replace(month=target.month - 1)
        if target.month > 1
        else target.replace(year=target.year - 1, month=12)
    )
    body = example("request-received.json", request_id=soon, right="access")["data"]
    submit(api, key, {**body, "received_at": month_before.isoformat()})
    erase = f"REQ-ERASE-{token}"
    body = example("request-erasure-received.json", request_id=erase)["data"]
    submit(api, key, {**body, "received_at": now.isoformat()})

    # Sign in: a wrong key is refused, the right one opens today's work.
    page.goto(f"{api}/console")
    assert page.url.endswith("/console/login")
    page.fill("input[name=api_key]", "gdn_nope_nope")
    page.click("button[type=submit]")
    assert page.locator(".flash.error").is_visible()
    shot(page, "login")
    page.fill("input[name=api_key]", key)
    page.click("form[action='/console/login'] button")
    cookie = next(c for c in page.context.cookies() if c["name"] == "gardien_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.goto(f"{api}/console/lang/en?next=/console/requests")
    assert soon in page.locator("main").inner_text()
    shot(page, "requests")
    page.goto(f"{api}/console")

    row = until_text(page, f"{api}/console", "main", soon)
    assert soon in row
    # The request's own row, not its collection case's (`acc:<request id>`, listed beside it).
    line = page.locator("tr", has_text=soon).filter(has_not_text=f"acc:{soon}")
    assert "3 d" in line.inner_text() or "4 d" in line.inner_text() or "5 d" in line.inner_text()
    shot(page, "today")
    page.goto(f"{api}/console/lang/fr?next=/console")
    assert "Aujourd'hui" in page.locator("h1").inner_text()
    shot(page, "today-fr")
    page.goto(f"{api}/console/lang/en?next=/console")

    # Extend it with reasons and see the due date move.
    line.locator("a").click()
    before = page.locator("#due-date").inner_text()
    extension = page.locator("#form-extension")
    extension.locator("button").click()
    assert "reasons" in page.locator(".flash.error").inner_text()  # 422: reasons required
    page.locator("#form-extension textarea[name=reasons]").fill("four archived systems to search")
    page.locator("#form-extension button").click()
    assert page.locator(".flash.sent").is_visible()
    url = f"{api}/console/requests/{soon}"
    until_text(page, url, "#extension", "four archived systems")
    after = page.locator("#due-date").inner_text()
    assert after != before
    assert "local-admin" in page.locator("ol.timeline").inner_text()  # the acting key, audited
    shot(page, "request")

    # A late breach notification asks for the reasons.
    bid = f"BR-{token}"
    page.goto(f"{api}/console/breaches")
    form = page.locator("#new-breach")
    form.locator("input[name=breach_id]").fill(bid)
    form.locator("input[name=aware_at]").fill(local(now - timedelta(days=4)))
    form.locator("button").click()
    until_text(page, f"{api}/console/breaches", "main", bid)
    notify = page.locator(f"#notify-authority-{bid}")
    notify.locator("button").click()
    problem = page.locator(".flash.error").inner_text()
    assert "reasons_for_delay is required" in problem
    page.locator(f"#notify-authority-{bid} input[name=reasons_for_delay]").fill("forensics first")
    page.locator(f"#notify-authority-{bid} button").click()
    until_text(page, f"{api}/console/breaches", f"#{bid} .state-authority", "missed")
    shot(page, "breaches")

    # Place and release a hold.
    matter = f"litige-{token}"
    page.goto(f"{api}/console/holds")
    page.locator("#new-hold input[name=matter]").fill(matter)
    page.locator("#new-hold input[name=categories]").fill("billing")
    page.locator("#new-hold button").click()
    until_text(page, f"{api}/console/holds", f"#hold-{matter} .hold-state", "active")
    shot(page, "holds")
    page.locator(f"#hold-{matter} button").click()
    until_text(page, f"{api}/console/holds", f"#hold-{matter} .hold-state", "released")

    # Confirm the manual erasure step and see the case close.
    url = f"{api}/console/requests/{erase}"
    page.goto(url)
    if page.locator("#form-identity-verification").count():
        page.locator("#form-identity-verification button").click()
    until_text(page, url, "main", "paper-archive", tries=60)
    confirm = page.locator("form[data-system=paper-archive]")
    page.locator("details summary").first.click()
    confirm.locator("input[name=performed_at]").fill(local(now))
    confirm.locator("textarea[name=what]").fill("shredded the paper file, emptied the drive folder")
    confirm.locator("button").click()
    until_text(page, url, "#case-state", "closed", tries=60)
    shot(page, "erasure")

    for name in ("systems", "audit", "webhooks"):
        page.goto(f"{api}/console/{name}")
        if name == "audit":
            page.locator("main form button").click()
            assert page.locator("#verify-result").inner_text() != ""
        shot(page, name)

    # The register as CSV (GET /v1/register?format=csv, from the register's own change).
    page.goto(f"{api}/console/register")
    shot(page, "register")
    assert not page.locator("#register-missing").count(), "the register page shows no register"
    with page.expect_download() as download:
        page.locator("#register-csv").click()
    saved = Path(tempfile.mkdtemp()) / "register.csv"
    download.value.save_as(saved)
    rows = list(csv.DictReader(saved.open(encoding="utf-8-sig")))
    assert rows, "the register CSV has no activity"

    # Sign out ends the session.
    page.locator("header form button").click()
    page.goto(f"{api}/console")
    assert page.url.endswith("/console/login")
