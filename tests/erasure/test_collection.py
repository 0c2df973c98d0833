"""Collection cases (access, portability) on the in-memory repositories and blob store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from services.erasure import collection
from services.erasure.collect import Collector
from services.erasure.collection import UploadRefused
from services.erasure.connector import Reply
from services.erasure.exports import Counted
from services.erasure.packages import PackageOrder
from services.erasure.registry import Registry
from services.erasure.uploads import UploadLinks, check, token
from services.erasure.usecases import Erasure
from shared.blobs import MemoryBlobs
from shared.clock import FakeClock
from shared.errors import TransitionRefused
from shared.events.inbound import ExportResult
from shared.events.internal import AccessWorkRequested
from tests.erasure.fakes import FakeBroker, FakeConnector, no_span
from tests.erasure.test_domain import DEFAULTS, NOW
from tests.erasure.test_usecases import build as build_erasure
from tests.erasure.test_usecases import result as erasure_result
from tests.erasure.test_usecases import works as erasure_works

KEY = b"k" * 32
ISSUED = "gardien.erasure.command.issued"
REGISTRY = Registry.model_validate(
    {
        "category_aliases": {"marketing": ["marketing", "behaviour"]},
        "systems": [
            {
                "id": "crm",
                "categories": {"profile": {"provided_by_subject": True}},
                "identifiers": ["email", "customer_id"],
            },
            {
                "id": "newsletter",
                "categories": {"marketing": {"provided_by_subject": True}},
                "identifiers": ["email"],
                "transport": {"kind": "http", "url": "http://127.0.0.1:1/x"},
            },
            {"id": "vendor", "categories": {"behaviour": {}}, "identifiers": ["email"]},
            {"id": "phone-only", "categories": {"profile": {}}, "identifiers": ["phone"]},
            {
                "id": "partner",
                "categories": {"profile": {}},
                "identifiers": ["email"],
                "transport": {"kind": "none", "unreachable_reason": "ceased trading"},
            },
        ],
    }
)


def access_work(right: str = "access", rid: str = "R-1", **extra: Any) -> AccessWorkRequested:
    return AccessWorkRequested.model_validate(
        {
            "case_id": f"acc:{rid}",
            "request_id": rid,
            "right": right,
            "subject": {"kind": "customer", "identifiers": {"email": "a@example.org"}},
            "received_at": NOW.isoformat(),
            "due_by": "2027-04-05",
            **extra,
        }
    )


@dataclass
class FakePackages:
    """Records the orders; fails while ``failing`` is set."""

    orders: list[tuple[PackageOrder, datetime]] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    failing: bool = False

    async def expect(self, request_ids: Sequence[str], now: datetime) -> None:
        self.expected.extend(request_ids)

    async def build(self, order: PackageOrder, now: datetime) -> Any:
        if self.failing:
            raise RuntimeError("store away")
        self.orders.append((order, now))
        return type("Info", (), {"package_id": f"package:{order.request_id}"})()


@dataclass
class Rig:
    collector: Collector
    erasure: Erasure
    broker: FakeBroker
    clock: FakeClock
    blobs: MemoryBlobs
    packages: FakePackages
    connector: FakeConnector

    def commands(self, system: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.broker.of_type(ISSUED) if e["data"]["system"] == system]

    async def case(self, case_id: str = "acc:R-1") -> Any:
        return (await self.erasure.repos.cases.get_many([case_id]))[case_id].case

    async def put(self, system: str, body: bytes, kind: str = "application/json") -> Any:
        url = urlparse(self.commands(system)[-1]["upload_url"])
        command_id = unquote(url.path.rsplit("/", 1)[1])
        given = parse_qs(url.query)["token"][0]
        return await self.collector.upload(command_id, given, kind, chunks(body))

    async def answer(self, system: str, outcome: str, **extra: Any) -> dict[str, Any]:
        data = ExportResult.model_validate(
            {"command_id": f"acc:R-1:{system}", "system": system, "outcome": outcome, **extra}
        )
        return await self.collector.results([(f"ev-{system}-{outcome}-{extra}", data)])


async def chunks(body: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def rig(reply: Reply | None = None) -> Rig:
    broker, clock = FakeBroker(), FakeClock(NOW)
    connector = FakeConnector(reply or Reply(accepted=True))
    refs = lambda ids: sorted(f"ref:{v.casefold()}" for v in ids.values())  # noqa: E731
    from services.erasure.memory import memory_repositories

    erasure = Erasure(
        memory_repositories(), broker.as_broker(), REGISTRY, DEFAULTS, clock, connector,
        refs, no_span, links=UploadLinks(KEY, "http://gw.test", 600),
    )  # fmt: skip
    blobs, packages = MemoryBlobs(), FakePackages()
    collector = Collector(erasure, blobs, packages, KEY)
    erasure.on_ready = collector.build_ready
    return Rig(collector, erasure, broker, clock, blobs, packages, connector)


def test_access_plans_an_export_per_reachable_system_and_notes_the_others() -> None:
    case = collection.plan_collection(access_work(), REGISTRY, DEFAULTS, NOW)
    assert set(case.systems) == {"crm", "newsletter", "vendor"}
    assert {p.action for p in case.systems.values()} == {"export"}
    assert case.systems["crm"].lines[0].kind == "export"
    assert case.systems["crm"].identifiers == {"email": "a@example.org"}
    assert {s["system"] for s in case.skipped} == {"phone-only", "partner"}
    assert case.collection is not None and case.collection.kid == "access:R-1"


def test_portability_collects_only_what_the_subject_provided() -> None:
    case = collection.plan_collection(access_work("portability"), REGISTRY, DEFAULTS, NOW)
    assert set(case.systems) == {"crm", "newsletter"}
    assert case.collection is not None
    assert case.collection.provided == {"crm": ["profile"], "newsletter": ["marketing"]}


def test_named_categories_narrow_the_collection_through_the_aliases() -> None:
    work = access_work(categories=["marketing"])
    case = collection.plan_collection(work, REGISTRY, DEFAULTS, NOW)
    assert set(case.systems) == {"newsletter", "vendor"}


def test_upload_tokens_are_bound_to_the_command_and_expire() -> None:
    expires = int((NOW + timedelta(minutes=5)).timestamp())
    good = token(KEY, "acc:R-1:crm", expires)
    assert check(KEY, "acc:R-1:crm", good, NOW) == "ok"
    assert check(KEY, "acc:R-1:vendor", good, NOW) == "wrong"
    assert check(b"x" * 32, "acc:R-1:crm", good, NOW) == "wrong"
    assert check(KEY, "acc:R-1:crm", good, NOW + timedelta(minutes=5)) == "expired"
    assert check(KEY, "acc:R-1:crm", None, NOW) == "missing"
    assert check(KEY, "acc:R-1:crm", "12.abc", NOW) == "malformed"


async def test_a_full_collection_builds_the_package_once_every_system_is_done() -> None:
    r = rig()
    assert await r.collector.open([("w-1", access_work())]) == {}
    assert r.packages.expected == ["R-1"]
    (crm,) = r.commands("crm")
    assert crm["action"] == "export" and crm["upload_url"].startswith("http://gw.test/v1/uploads/")
    assert "a@example.org" not in crm["upload_url"]
    upload = await r.put("crm", b'[{"category": "profile", "name": "A"}]')
    assert upload.blob_id == "upload:acc:R-1:crm" and upload.size == 38
    assert await r.answer("crm", "exported", records=1, bytes=38) == {}
    await r.put("newsletter", b'{"records": []}')
    await r.answer("newsletter", "not_found", records=0)
    assert r.packages.orders == []  # the vendor has not answered
    await r.put("vendor", b'{"category": "behaviour"}\n', "application/x-ndjson")
    await r.answer("vendor", "exported", records=1)
    ((order, _),) = r.packages.orders
    assert (order.request_id, order.right, order.kid) == ("R-1", "access", "access:R-1")
    answers = {a.system: a for a in order.answers}
    assert answers["crm"].status == "answered" and answers["crm"].blob_id == upload.blob_id
    assert answers["vendor"].content_type == "application/x-ndjson"
    assert answers["newsletter"].status == "not_found" and answers["newsletter"].blob_id is None
    assert answers["partner"].status == "no_answer"
    assert (answers["partner"].reason or "").startswith("not asked: no transport")
    stored = [b async for b in r.blobs.read(upload.blob_id, "access:R-1")]
    assert b"".join(stored) == b'[{"category": "profile", "name": "A"}]'
    case = await r.case()
    assert case.state == "closed" and case.collection.package_id == "package:R-1"
    assert all(p.identifiers == {} for p in case.systems.values())
    (closed,) = r.broker.of_type("gardien.erasure.case.closed")
    assert closed["data"]["package_id"] == "package:R-1"
    assert closed["data"]["systems"]["crm"] == {
        "state": "acknowledged", "outcome": "exported", "attempts": 1, "action": "export",
        "records": 1, "uploaded": True,
    }  # fmt: skip


async def test_a_silent_system_is_retried_then_escalated_and_a_failing_one_named() -> None:
    r = rig()
    await r.collector.open([("w-1", access_work())])
    await r.put("crm", b"[]")
    await r.answer("crm", "exported", records=0)
    await r.answer("newsletter", "failed", detail="export job crashed")
    r.clock.advance(timedelta(seconds=11))
    await r.erasure.sweep()  # both retried: a fresh upload URL per attempt
    assert [c["attempt"] for c in r.commands("vendor")] == [1, 2]
    first, second = (c["upload_url"] for c in r.commands("vendor"))
    assert first != second
    await r.put("vendor", b"[]")
    await r.answer("vendor", "exported", records=0)  # late, after a retry
    assert r.packages.orders == []
    r.clock.advance(timedelta(seconds=100))
    await r.erasure.sweep()  # the newsletter's time is up: escalated, the package is built
    ((order, _),) = r.packages.orders
    news = next(a for a in order.answers if a.system == "newsletter")
    assert news.status == "failed" and "export job crashed" in (news.reason or "")
    assert next(a for a in order.answers if a.system == "vendor").status == "answered"
    assert r.broker.of_type("gardien.erasure.case.escalated")


async def test_exported_without_an_upload_is_a_failure_until_the_data_come() -> None:
    r = rig()
    await r.collector.open([("w-1", access_work())])
    await r.answer("crm", "exported", records=3)
    case = await r.case()
    assert case.systems["crm"].outcome == "failed"
    assert case.systems["crm"].detail == collection.NO_UPLOAD


async def test_bad_uploads_are_refused_precisely_and_change_nothing() -> None:
    r = rig()
    await r.collector.open([("w-1", access_work())])
    url = urlparse(r.commands("crm")[0]["upload_url"])
    good = parse_qs(url.query)["token"][0]

    async def refused(command_id: str, given: str | None, kind: str = "application/json") -> int:
        with pytest.raises(UploadRefused) as caught:
            await r.collector.upload(command_id, given, kind, chunks(b"[]"))
        return caught.value.status

    assert await refused("acc:R-1:crm", None) == 401
    assert await refused("acc:R-1:crm", "not-a-token") == 401
    assert await refused("acc:R-1:vendor", good) == 403
    assert await refused("acc:R-1:crm", good, "text/csv") == 415
    stranger = token(KEY, "acc:R-9:crm", int(NOW.timestamp()) + 60)
    assert await refused("acc:R-9:crm", stranger) == 404
    r.clock.advance(timedelta(seconds=601))
    assert await refused("acc:R-1:crm", good) == 403  # expired
    assert r.blobs.blobs == {}
    assert (await r.case()).collection.uploads == {}


async def test_an_upload_over_the_limit_keeps_nothing() -> None:
    r = rig()
    small = DEFAULTS.model_copy(update={"upload_max_bytes": 10})
    r.erasure.settings = small
    await r.collector.open([("w-1", access_work())])
    with pytest.raises(UploadRefused) as caught:
        await r.put("crm", b"[" + b'{"a": 1},' * 5 + b"{}]")
    assert caught.value.status == 413
    assert r.blobs.blobs == {} and (await r.case()).collection.uploads == {}


async def test_uploads_to_a_closed_case_are_refused() -> None:
    r = rig()
    await r.collector.open([("w-1", access_work(categories=["profile"]))])
    await r.put("crm", b"[]")
    await r.answer("crm", "exported", records=0)
    assert r.packages.orders  # crm was the only system asked: the package is built
    with pytest.raises(UploadRefused) as caught:
        await r.put("crm", b"[]")
    assert caught.value.status == 409
    assert await r.answer("crm", "exported", records=0) == {}  # late: changes nothing


async def test_a_failed_build_is_tried_again_by_the_sweeper() -> None:
    r = rig()
    r.packages.failing = True
    await r.collector.open([("w-1", access_work(categories=["profile"]))])
    await r.put("crm", b"[]")
    await r.answer("crm", "exported", records=0)
    assert (await r.case()).state == "open"
    r.packages.failing = False
    await r.erasure.sweep()
    assert r.packages.orders == []  # not due yet
    r.clock.advance(timedelta(seconds=61))
    await r.erasure.sweep()
    assert len(r.packages.orders) == 1 and (await r.case()).state == "closed"


async def test_http_systems_answer_an_export_in_their_response() -> None:
    reply = Reply(result={"outcome": "exported", "records": 0, "bytes": 2})
    r = rig(reply)
    await r.collector.open([("w-1", access_work(categories=["marketing"]))])
    case = await r.case()
    assert case.systems["newsletter"].outcome == "exported"
    assert case.collection.counted["newsletter"] == Counted(records=0, bytes=2)
    (call,) = r.connector.calls
    assert call[1].data["upload_url"]


async def test_export_answers_and_erasure_answers_do_not_cross() -> None:
    r = rig()
    await r.collector.open([("w-1", access_work())])
    wrong = erasure_result("acc:R-1", "crm", "erased")
    refused = await r.erasure.record_results([("ev-x", wrong)])
    assert isinstance(refused["ev-x"], TransitionRefused)
    uses, _, _ = build_erasure()
    await uses.open_work(erasure_works(1))
    data = ExportResult.model_validate(
        {"command_id": "req:R-0:crm", "system": "crm", "outcome": "exported"}
    )
    collector = Collector(uses, MemoryBlobs(), FakePackages(), KEY)
    assert "ev-y" in await collector.results([("ev-y", data)])


def test_commands_name_no_one_in_their_upload_url() -> None:
    links = UploadLinks(KEY, "http://gw.test/", 60)
    url, expires = links.link("acc:R-1:crm", NOW)
    assert url.startswith("http://gw.test/v1/uploads/acc%3AR-1%3Acrm?token=")
    assert expires == (NOW + timedelta(seconds=60)).isoformat()
    assert json.dumps(url).count("@") == 0


def test_an_http_answer_that_is_not_an_export_answer_is_a_failure() -> None:
    assert collection.replied({"outcome": "exported", "records": 2}) == (
        "exported", Counted(records=2), None,
    )  # fmt: skip
    outcome, _, detail = collection.replied({"outcome": "erased"})
    assert outcome == "failed" and "not an export outcome" in (detail or "")
    outcome, _, detail = collection.replied({"outcome": "exported", "records": "many"})
    assert outcome == "failed" and detail == "the answer's counts are not numbers"
