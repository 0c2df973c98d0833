"""``PUT /v1/uploads/{command_id}``: precise 4xx for bad uploads, 201 and the blob otherwise."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import httpx
from fastapi import FastAPI

from services.erasure.upload_http import router
from tests.erasure.test_collection import Rig, access_work, rig


async def put(r: Rig, target: str, body: Any, kind: str = "application/json") -> httpx.Response:
    app = FastAPI()
    app.include_router(router)
    app.state.collector = r.collector
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://erasure") as client:
        return await client.put(target, content=body, headers={"content-type": kind})


def target(r: Rig, system: str) -> str:
    url = urlparse(r.commands(system)[-1]["upload_url"])
    return f"{url.path}?{url.query}"


async def test_an_upload_is_stored_and_described() -> None:
    r = rig()
    await r.collector.open([("w-1", access_work())])

    async def parts() -> Any:
        yield b'{"category": "profile"}\n'
        yield b'{"category": "profile", "n": 2}\n'

    reply = await put(r, target(r, "crm"), parts(), "application/x-ndjson; charset=utf-8")
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["blob_id"] == "upload:acc:R-1:crm" and body["size"] == 56
    assert body["content_type"] == "application/x-ndjson"
    assert "upload:acc:R-1:crm" in r.blobs.blobs


async def test_bad_uploads_get_a_precise_status_and_leave_nothing() -> None:
    r = rig()
    await r.collector.open([("w-1", access_work())])
    good = target(r, "crm")
    path = good.split("?")[0]
    cases = {
        path: 401,
        f"{path}?token=garbage": 401,
        good.replace("acc%3AR-1%3Acrm", "acc%3AR-1%3Avendor"): 403,
    }
    for url, expected in cases.items():
        assert (await put(r, url, b"[]")).status_code == expected, url
    assert (await put(r, good, b"a,b\n", "text/csv")).status_code == 415
    r.erasure.settings = r.erasure.settings.model_copy(update={"upload_max_bytes": 4})
    assert (await put(r, good, b"[1, 2, 3]")).status_code == 413
    assert r.blobs.blobs == {}
    assert (await r.case()).collection.uploads == {}


async def test_an_upload_after_the_package_is_a_conflict() -> None:
    r = rig()
    await r.collector.open([("w-1", access_work(categories=["profile"]))])
    good = target(r, "crm")
    assert (await put(r, good, b"[]")).status_code == 201
    await r.answer("crm", "exported", records=0)
    reply = await put(r, good, b"[]")
    assert reply.status_code == 409 and "closed" in reply.json()["detail"]
