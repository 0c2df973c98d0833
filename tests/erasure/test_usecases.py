"""Erasure's batch use cases on the in-memory repositories (milliseconds, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from services.erasure import handlers, holdcases, messages
from services.erasure.connector import Reply
from services.erasure.memory import MemoryCases, memory_repositories
from services.erasure.repository import Repositories, Stored, Write
from services.erasure.usecases import Erasure
from shared import topics
from shared.clock import FakeClock
from shared.errors import PermanentError, RefusedEvents, TransitionRefused
from shared.events import CloudEvent, new_event
from shared.events.inbound import ErasureResult, LegalHold
from shared.persistence import Saved
from tests.erasure.fakes import FakeBroker, FakeConnector, no_span
from tests.erasure.test_domain import DEFAULTS, NOW, REGISTRY, work

CLOSED = "gardien.erasure.case.closed"


@dataclass
class CountingCases(MemoryCases):
    """The fake, counting the round trips a real store would see."""

    reads: list[int] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)
    race: list[str] = field(default_factory=list)  # ids another writer changes once

    async def get_many(self, ids: Any, *, reveal: bool = False) -> dict[str, Stored]:
        found = await super().get_many(ids, reveal=reveal)
        self.reads.append(len(found))
        for case_id in [i for i in self.race if i in self.rows]:
            self.race.remove(case_id)
            self.rows[case_id].case.version += 1  # a concurrent writer saved meanwhile
        return found

    async def save_many(self, writes: Sequence[Write]) -> Saved:
        self.writes.append(len(writes))
        return await super().save_many(writes)


def build(connector: FakeConnector | None = None) -> tuple[Erasure, FakeBroker, CountingCases]:
    base = memory_repositories()
    cases = CountingCases()
    repos = Repositories(cases, base.holds, base.routes)
    broker, clock = FakeBroker(), FakeClock(NOW)
    refs = lambda ids: sorted(f"ref:{v.casefold()}" for v in ids.values())  # noqa: E731
    uses = Erasure(
        repos, broker.as_broker(), REGISTRY, DEFAULTS, clock, connector or FakeConnector(),
        refs, no_span,
    )  # fmt: skip
    return uses, broker, cases


def works(n: int) -> list[tuple[str, Any]]:
    items = []
    for i in range(n):
        w = work({"category": "customer", "action": "erase", "ground": "Art 17(1)(b)"})
        items.append((f"ev-{i}", w.model_copy(update={"case_id": f"req:R-{i}"})))
    return items


def result(case_id: str, system: str, outcome: str = "erased") -> ErasureResult:
    return ErasureResult.model_validate(
        {"command_id": f"{case_id}:{system}", "system": system, "outcome": outcome}
    )


async def test_a_batch_of_work_opens_every_case_in_one_read_and_one_write() -> None:
    uses, broker, cases = build()
    assert await uses.open_work(works(20)) == {}
    assert cases.reads == [0] and cases.writes == [20]
    commands = broker.of_type(messages.COMMAND_ISSUED)
    assert len(commands) == 20 * 3  # crm, newsletter (http), billing
    assert {c["data"]["attempt"] for c in commands} == {1}
    assert all(cases.rows[f"req:R-{i}"].outbox == [] for i in range(20))  # relayed


async def test_redelivered_work_opens_nothing_twice() -> None:
    uses, broker, cases = build()
    batch = works(3)
    await uses.open_work(batch + batch[:1])  # the same item twice in one batch
    sent = len(broker.sent)
    await uses.open_work(batch)
    assert len(broker.sent) == sent and cases.writes == [3, 0]


async def test_results_of_a_batch_are_folded_per_case_and_close_it() -> None:
    uses, broker, cases = build()
    await uses.open_work(works(2))
    answers = [
        (f"res-{case}-{system}", result(f"req:R-{case}", system))
        for system in ("crm", "newsletter", "billing")
        for case in (0, 1)
    ]
    assert await uses.record_results(answers) == {}
    assert cases.writes[-1] == 2  # two cases, one write each
    assert sorted(e["data"]["case_id"] for e in broker.of_type(CLOSED)) == ["req:R-0", "req:R-1"]
    progressed = [e["id"] for e in broker.of_type("gardien.erasure.case.progressed")]
    assert len(progressed) == 6 == len(set(progressed))  # distinct ids within one write
    assert cases.destroyed == {"req:R-0", "req:R-1"}
    closed = cases.rows["req:R-0"].case
    assert closed.state == "closed" and closed.art19 is not None
    assert all(p.identifiers == {} for p in closed.systems.values())


async def test_a_duplicate_answer_changes_nothing_and_an_unknown_one_is_refused() -> None:
    uses, broker, cases = build()
    await uses.open_work(works(1))
    first = [("res-1", result("req:R-0", "crm"))]
    await uses.record_results(first)
    before, sent = cases.rows["req:R-0"].case.model_copy(deep=True), len(broker.sent)
    refused = await uses.record_results(
        [*first, ("res-2", result("req:NOPE", "crm")), ("res-3", result("req:R-0", "ghost"))]
    )
    assert set(refused) == {"res-2", "res-3"}
    assert all(isinstance(e, TransitionRefused) for e in refused.values())
    assert cases.rows["req:R-0"].case == before and len(broker.sent) == sent


async def test_a_lost_race_is_decided_again_and_applied_once() -> None:
    uses, _, cases = build()
    await uses.open_work(works(2))
    cases.race.append("req:R-1")
    answers = [("res-a", result("req:R-0", "crm")), ("res-b", result("req:R-1", "crm"))]
    assert await uses.record_results(answers) == {}
    assert cases.writes[-2:] == [2, 1]  # R-1 lost the first round, redone alone
    assert cases.rows["req:R-1"].case.systems["crm"].outcome == "erased"
    assert cases.rows["req:R-1"].applied[-1] == "res-b"


async def test_the_sweeper_retries_with_identifiers_then_escalates() -> None:
    uses, broker, cases = build()
    await uses.open_work(works(1))
    clock = uses.clock
    assert isinstance(clock, FakeClock)
    clock.advance(timedelta(seconds=10))
    assert await uses.sweep() == 1
    retries = [c for c in broker.of_type(messages.COMMAND_ISSUED) if c["data"]["attempt"] == 2]
    assert {c["data"]["system"] for c in retries} == {"crm", "newsletter", "billing"}
    assert retries[0]["data"]["identifiers"]
    clock.advance(timedelta(seconds=100))
    await uses.sweep()
    assert cases.rows["req:R-0"].case.state == "escalated"
    assert len(broker.of_type("gardien.erasure.case.escalated")) == 3
    assert await uses.sweep() == 0  # nothing due any more


async def test_an_http_system_answering_at_once_is_reconciled() -> None:
    connector = FakeConnector(Reply(result={"outcome": "erased"}))
    uses, _, cases = build(connector)
    await uses.open_work(works(1))
    assert [c.data["system"] for _, c in connector.calls] == ["newsletter"]
    assert cases.rows["req:R-0"].case.systems["newsletter"].outcome == "erased"


async def test_a_failed_http_delivery_is_noted_and_retried_on_schedule() -> None:
    uses, _, cases = build(FakeConnector(Reply(error="HTTP 500")))
    await uses.open_work(works(1))
    steps = cases.rows["req:R-0"].case.systems["newsletter"].steps
    assert [s.kind for s in steps] == ["sent", "delivery_failed"]


async def test_a_hold_keeps_back_then_its_release_issues_the_part() -> None:
    uses, broker, cases = build()
    hold = LegalHold.model_validate({
        "hold_id": "H1", "matter": "dispute", "at": NOW.isoformat(),
        "scope": {"subjects": [{"kind": "customer", "identifiers": {"email": "A@example.org"}}],
                  "categories": ["payment"]},
    })  # fmt: skip
    await holdcases.placed(uses, "hold-1", hold)
    await uses.open_work(works(1))
    case = cases.rows["req:R-0"].case
    assert case.systems["billing"].state == "held" and case.holds_pending == ["H1"]
    await holdcases.released(uses, "hold-2", hold)
    case = cases.rows["req:R-0"].case
    assert case.systems["billing"].attempts == 1 and case.holds_pending == []
    [released] = broker.of_type("gardien.erasure.case.released")
    assert released["data"]["reissued"] == ["billing"]


def event(event_type: str, data: dict[str, Any]) -> CloudEvent:
    return new_event(event_type, data, source="tests", time=NOW)


def test_refusals_are_named_to_the_consumer_with_their_reasons() -> None:
    one = [event("gdpr.erasure.result", {})]
    _, invalid = handlers.typed(one, ErasureResult)
    with pytest.raises(RefusedEvents) as raised:
        handlers.settle([*one, event("gdpr.erasure.result", {"x": 1})], invalid)
    assert list(raised.value.refusals) == [one[0].id]
    assert raised.value.refusals[one[0].id].startswith("invalid gdpr.erasure.result data")
    assert isinstance(raised.value, PermanentError)  # alone, it is dead-lettered as such
    handlers.settle(one, {})


async def test_a_poll_of_new_cases_is_opened_a_slice_at_a_time() -> None:
    uses, broker, cases = build()
    routes: dict[str, Any] = {}
    consumer = SimpleNamespace(batches=lambda topic, h, **_: routes.__setitem__(topic, h))
    handlers.register(SimpleNamespace(consumer=consumer), lambda: uses, lambda: None)  # type: ignore[arg-type]
    poll = [event(handlers.WORK_REQUESTED, w.model_dump(mode="json")) for _, w in works(250)]
    await routes[topics.ERASURE_WORK](poll)
    assert cases.reads == [0, 0, 0] and cases.writes == [100, 100, 50]
    assert len(broker.of_type("gardien.erasure.case.opened")) == 250
