"""A partition's batch at a time: few writes, re-deliveries recognised, replicas, closures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from services.audit.app import create_app
from services.audit.dispatcher import Dispatcher
from services.audit.mongo import mongo_repositories
from services.audit.settings import AuditSettings
from services.audit.usecases import Auditor
from shared import topics
from shared.errors import TransientError
from shared.messaging import Delivery
from shared.settings import Settings
from tests.audit.conftest import Trail, delivery
from tests.audit.test_shredding import _case_flow, _closed, _result, _reveal, _states
from tests.support import event_bytes, example, produce, running, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def trail(mongo_trail: Trail) -> Trail:
    """Concurrent writers and commands sent: the MongoDB trail."""
    return mongo_trail


PHONE = "+33 6 98 76 54 32"


class Commands(monitoring.CommandListener):
    """Counts the commands a client sends, by name."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@asynccontextmanager
async def counting(trail: Trail) -> AsyncIterator[tuple[Auditor, Commands]]:
    """An auditor on the trail's database whose client counts the commands it sends."""
    listener = Commands()
    runtime = trail.app.state.runtime
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        runtime.settings.mongodb_uri, tz_aware=True, event_listeners=[listener]
    )
    try:
        assert trail.db is not None
        repos = mongo_repositories(client[trail.db.name])
        yield Auditor(repos, runtime.pseudonyms, runtime.span, trail.clock), listener
    finally:
        await client.close()


def requests(run: str, n: int, partition: int = 9) -> list[Delivery]:
    events = [example("request-received.json", request_id=f"REQ-{run}-{i}") for i in range(n)]
    return [delivery(e, topics.REQUESTS, partition) for e in events]


async def chain_of(trail: Trail, chain: str) -> list[dict[str, Any]]:
    return sorted(await trail.stored(chain=chain), key=lambda d: int(d["seq"]))


async def verified(trail: Trail) -> dict[str, Any]:
    reply = await trail.http.get("/v1/audit/verify", headers=trail.headers)
    body: dict[str, Any] = reply.json()
    assert body["ok"], body["first_problem"]
    return body


async def test_a_batch_costs_a_handful_of_writes_and_chains_in_order(trail: Trail) -> None:
    run = uuid.uuid4().hex[:6]
    batch = requests(run + "b", 50, partition=11)
    async with counting(trail) as (auditor, commands):
        await auditor.record_batch(requests(run, 2, partition=11))  # vault, first head
        commands.names.clear()
        await auditor.record_batch(batch)
    writes = [n for n in commands.names if n in ("insert", "update")]
    # new subject keys, records, subject index, head; links are upserted through one update
    assert writes.count("insert") <= 3 and writes.count("update") <= 2, commands.names
    assert len(commands.names) <= 8, commands.names
    stored = await chain_of(trail, f"{topics.REQUESTS}/11")
    assert [r["seq"] for r in stored] == list(range(1, 53))
    assert [r["offset"] for r in stored[2:]] == [d.offset for d in batch]
    await verified(trail)


async def test_a_batch_queues_its_webhook_deliveries_in_one_write(trail: Trail) -> None:
    run = uuid.uuid4().hex[:6]
    async with counting(trail) as (auditor, commands):
        dispatcher = Dispatcher(auditor.repos, AuditSettings(), trail.clock, auditor.record_local)
        auditor.after_append.append(dispatcher.enqueue)
        sub = {"_id": f"sub-{run}", "state": "active", "event_types": ["gdpr.request.*"]}
        await auditor.repos.webhooks.add({**sub, "url": "http://127.0.0.1:9/hook"})
        await auditor.record_batch(requests(run, 2, partition=12))  # vault, first head
        commands.names.clear()
        await auditor.record_batch(requests(run + "b", 30, partition=12))
    assert trail.db is not None
    queued = [d async for d in trail.db["deliveries"].find({"sub_id": sub["_id"]})]
    assert len(queued) == 32
    # records, subject index, deliveries (+ keys): not one insert per record
    assert commands.names.count("insert") <= 4, commands.names


class IndexInserts(monitoring.CommandListener):
    """The documents a client's ``insert`` commands send to the subject index."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "insert" and event.command["insert"] == "subject_index":
            self.documents += event.command.get("documents", [])

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_second_batch_of_a_request_inserts_no_index_entry(trail: Trail) -> None:
    rid = f"REQ-{uuid.uuid4().hex[:6]}"
    first = [delivery(example("request-received.json", request_id=rid), topics.REQUESTS, 14)]
    later = [
        delivery(example(name, request_id=rid), topics.REQUESTS, 14)
        for name in ("request-identity-verified.json", "request-extended.json")
    ]
    listener, runtime = IndexInserts(), trail.app.state.runtime
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        runtime.settings.mongodb_uri, tz_aware=True, event_listeners=[listener]
    )
    try:
        assert trail.db is not None
        repos = mongo_repositories(client[trail.db.name])
        auditor = Auditor(repos, runtime.pseudonyms, runtime.span, trail.clock)
        await auditor.record_batch(first)
        (received,) = await trail.stored(**{"refs.request_id": rid})
        refs = received["subject_refs"]
        assert sorted(d["_id"] for d in listener.documents) == sorted(
            f"{ref}|request_id:{rid}" for ref in refs
        )
        listener.documents.clear()
        await auditor.record_batch(later)
        assert listener.documents == []  # its subjects and aggregate are indexed already
        stored = await trail.stored(**{"refs.request_id": rid})
        assert len(stored) == 3 and all(r["subject_refs"] == refs for r in stored)
        found = await repos.records.records_of_subject(refs[0])
        assert set(found) >= {r["_id"] for r in stored}
    finally:
        await client.close()


async def test_a_redelivered_batch_is_recognised_and_only_the_rest_appended(trail: Trail) -> None:
    run = uuid.uuid4().hex[:6]
    batch = requests(run, 10, partition=12)
    await trail.auditor.record_batch(batch[:4])
    fresh = trail.restarted()  # a restarted process: nothing cached
    await fresh.record_batch([batch[2], *batch[:4], *batch[4:]])  # the poll comes again, longer
    stored = await chain_of(trail, f"{topics.REQUESTS}/12")
    assert [r["offset"] for r in stored] == [d.offset for d in batch]
    assert [r["seq"] for r in stored] == list(range(1, 11))
    assert trail.db is not None
    request = {"field": "request_id", "value": stored[0]["refs"]["request_id"]}
    index = await trail.db["subject_index"].count_documents(request)
    assert index == len(stored[0]["subject_refs"]) > 0
    await verified(trail)


async def test_two_replicas_on_one_chain_each_record_lands_once(trail: Trail) -> None:
    run = uuid.uuid4().hex[:6]
    first, second = trail.auditor, trail.restarted()
    await first.record_batch(requests(run, 1, partition=13))
    await second.record_batch(requests(run + "x", 1, partition=13))  # both heads now cached

    async def feed(auditor: Auditor, batch: list[Delivery]) -> None:
        for _ in range(20):  # the consumer retries a transient failure the same way
            try:
                await auditor.record_batch(batch)
                return
            except TransientError:
                await asyncio.sleep(0.01)
        raise AssertionError("never appended")

    stale = requests(f"{run}-s", 5, partition=13)
    await first.record_batch(requests(f"{run}-f", 5, partition=13))
    await second.record_batch(stale)  # its cached head is 5 records behind: found again
    batches = [requests(f"{run}-{k}", 15, partition=13) for k in range(4)]
    await asyncio.gather(*(feed((first, second)[k % 2], b) for k, b in enumerate(batches)))
    stored = await chain_of(trail, f"{topics.REQUESTS}/13")
    assert len(stored) == 72 and len({r["_id"] for r in stored}) == 72
    assert [r["seq"] for r in stored] == list(range(1, 73))
    assert [r["offset"] for r in stored[7:12]] == [d.offset for d in stale]
    for b in batches:  # each batch keeps its offset order inside the chain
        mine = [r["offset"] for r in stored if r["offset"] in {d.offset for d in b}]
        assert mine == [d.offset for d in b]
    await verified(trail)


async def test_records_after_a_closure_in_the_same_batch_are_not_sealed(trail: Trail) -> None:
    rid = f"REQ-CUT-{uuid.uuid4().hex[:6]}"
    flow = [delivery(e, t) for t, e in _case_flow(rid, f"{rid.lower()}@example.org")]
    await trail.auditor.record_batch(flow[:1])
    await trail.auditor.record_batch(flow[1:2])
    await trail.auditor.record_batch(flow[2:])
    same = topics.ERASURE_RESULTS  # closure and result in one batch of one partition
    closed = delivery(_closed(rid), same)
    late = delivery(_result(rid, "crm", f"phone {PHONE}"), same)
    await trail.auditor.record_batch([closed, late])
    items = await _reveal(trail, case_id=f"req:{rid}", type="gdpr.erasure.result")
    assert len(items) == 1 and _states(items[0]) == {"shredded"}
    [stored] = await trail.stored(_id=f"{same}|{_result_id(late)}")
    assert stored is not None and all("ct" not in p for p in stored["sealed"])  # never kept


def _result_id(d: Delivery) -> str:
    return d.event().id


async def test_two_audit_replicas_share_the_partitions_and_audit_each_event_once(
    own_broker: Settings, audit_settings: AuditSettings
) -> None:
    settings = own_broker
    run = uuid.uuid4().hex[:6]
    events = [example("request-received.json", request_id=f"REQ-{run}-{i}") for i in range(60)]
    one, two = (
        create_app(settings, audit=audit_settings),
        create_app(settings, audit=audit_settings),
    )
    async with running(one), running(two) as http:
        items = [(e["data"]["request_id"].encode(), event_bytes(e)) for e in events]
        await produce(settings.kafka_bootstrap_servers, topics.REQUESTS, items)
        records = one.state.runtime.db["records"]

        async def all_audited() -> bool:
            ids = [f"{topics.REQUESTS}|{e['id']}" for e in events]
            return await records.count_documents({"_id": {"$in": ids}}) == 60

        await wait_for(all_audited, timeout=60)
        headers = {"X-API-Key": _key(settings)}
        report = (await http.get("/v1/audit/verify", headers=headers)).json()
    assert report["ok"], report["first_problem"]


def _key(settings: Settings) -> str:
    from tests.support import api_key

    return api_key(settings)["X-API-Key"]


async def test_two_partitions_naming_a_new_subject_at_once_share_its_key(trail: Trail) -> None:
    email = f"new-{uuid.uuid4().hex[:8]}@example.org"
    run = uuid.uuid4().hex[:6]
    events = []
    for i in range(2):
        event = example("request-received.json", request_id=f"REQ-{run}-{i}")
        event["data"]["subject"]["identifiers"] = {"email": email}
        events.append(event)
    batches = [[delivery(e, topics.REQUESTS, 30 + i)] for i, e in enumerate(events)]
    await asyncio.gather(*(trail.auditor.record_batch(b) for b in batches))  # no conflict
    for i in range(2):
        [item] = await _reveal(trail, request_id=f"REQ-{run}-{i}")
        assert _states(item) == {"revealed"}, item
