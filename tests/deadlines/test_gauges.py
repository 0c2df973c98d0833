"""The deadlines gauges, from in-memory repositories and a fake clock (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from fastapi import FastAPI

from services.deadlines import gauges
from services.deadlines.domain import to_ms
from services.deadlines.memory import memory_repositories
from shared.clock import FakeClock
from shared.metrics import Metrics
from tests.shared.test_metrics import samples

NOW = datetime(2027, 5, 3, 8, 0, tzinfo=UTC)
HOUR = 3_600_000


def clock_doc(
    kind: str, due_in_ms: int, base: str = "open", state: str = "open"
) -> dict[str, object]:
    return {"kind": kind, "base": base, "state": state, "due_ms": to_ms(NOW) + due_in_ms}


def app_with(docs: dict[str, dict[str, object]]) -> tuple[FastAPI, Metrics]:
    app, metrics, repos = FastAPI(), Metrics("deadlines"), memory_repositories()
    repos.timers.docs.update(docs)  # type: ignore[attr-defined]
    app.state.runtime = SimpleNamespace(metrics=metrics)
    app.state.repositories = repos
    gauges.register(app, FakeClock(NOW))
    return app, metrics


async def test_clocks_are_counted_by_kind_and_status() -> None:
    _, metrics = app_with({
        "a": clock_doc("request", 10 * 24 * HOUR),
        "b": clock_doc("request", 2 * 24 * HOUR, state="approaching"),
        "c": clock_doc("request", -HOUR, state="missed"),
        "d": clock_doc("breach_authority", 11 * HOUR, state="approaching"),
        "e": clock_doc("retention", -HOUR),
        "f": clock_doc("request", -HOUR, base="met", state="met"),
        "g": {"kind": "request", "base": "open", "state": "open", "due_ms": None},
    })  # fmt: skip
    await metrics.refresh()
    text = metrics.exposition().decode()
    found = {
        (s["gardien_timer_kind"], s["gardien_timer_status"]): v
        for s, v in samples(text, "gardien_deadlines_timers")
    }
    assert found == {
        ("request", "pending"): 1,
        ("request", "approaching"): 1,
        ("request", "overdue"): 1,
        ("breach_authority", "approaching"): 1,
        ("retention", "due"): 1,
    }
    left = {
        s["gardien_timer_kind"]: v for s, v in samples(text, "gardien_deadlines_time_left_seconds")
    }
    assert left == {"request": 2 * 24 * 3600, "breach_authority": 11 * 3600}


async def test_outbox_backlog_counts_unsent_events() -> None:
    entry = {"id": "e1", "key": "t1", "event": {}}
    _, metrics = app_with({
        "t1": {"outbox": [entry, {**entry, "id": "e2"}], "outbox_pending": True},
        "t2": {"outbox": [], "outbox_pending": False},
    })  # fmt: skip
    await metrics.refresh()
    found = samples(metrics.exposition().decode(), "gardien_outbox_backlog")
    assert found == [({"db_collection_name": "timers"}, 2)]


async def test_a_gauge_keeps_its_last_figures_when_the_store_fails() -> None:
    app, metrics = app_with({"a": clock_doc("request", HOUR)})
    await metrics.refresh()
    app.state.repositories = None  # the store is gone: reading it raises
    await metrics.refresh()
    found = samples(metrics.exposition().decode(), "gardien_deadlines_timers")
    assert [v for _, v in found] == [1]
