"""The intake outbox gauge, from the in-memory request repository (no I/O)."""

from __future__ import annotations

from types import SimpleNamespace

from fastapi import FastAPI

from services.intake import gauges
from services.intake.memory import MemoryRequests
from shared.metrics import Metrics
from tests.contract.test_intake_requests import change, event
from tests.shared.test_metrics import samples


async def test_outbox_backlog_of_the_requests() -> None:
    requests = MemoryRequests()
    saved = await requests.save_many([change("A", None, event(1), event(2)), change("B", None)])
    app, metrics = FastAPI(), Metrics("intake")
    app.state.runtime = SimpleNamespace(metrics=metrics)
    app.state.intake = SimpleNamespace(repos=SimpleNamespace(requests=requests))
    gauges.register(app)
    await metrics.refresh()
    found = samples(metrics.exposition().decode(), "gardien_outbox_backlog")
    assert found == [({"db_collection_name": "requests"}, 2)]
    await requests.relay(saved.saved)
    await metrics.refresh()
    assert samples(metrics.exposition().decode(), "gardien_outbox_backlog")[0][1] == 0
