"""The audit gauges, read from the audit store on the embedded MongoDB server."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI

from services.audit import gauges
from services.audit.mongo import DELIVERIES, INDEXES, WEBHOOKS, mongo_repositories
from shared.metrics import Metrics
from shared.mongo import service_database
from shared.settings import Settings
from tests.shared.test_metrics import samples

pytestmark = pytest.mark.integration


async def test_deliveries_by_state_and_failing_subscriptions(
    mongo_client: Any, settings: Settings
) -> None:
    db = service_database(mongo_client, settings, "audit")
    await INDEXES.apply(db)
    repos = mongo_repositories(db)
    states = ["pending", "pending", "delivered", "failed", "cancelled", "delivered", "delivered"]
    await db[DELIVERIES].insert_many(
        [{"_id": f"d{i}", "state": s, "sub_id": "wh_1"} for i, s in enumerate(states)]
    )
    await db[WEBHOOKS].insert_many([
        {"_id": "wh_1", "state": "active", "url": "https://x.example/a",
         "consecutive_failures": 4},
        {"_id": "wh_2", "state": "active", "url": "https://x.example/b"},
        {"_id": "wh_3", "state": "disabled", "consecutive_failures": 99},
    ])  # fmt: skip
    assert await repos.deliveries.states(2) == {
        "pending": 2, "delivered": 2, "failed": 1, "cancelled": 1
    }  # fmt: skip
    app, metrics = FastAPI(), Metrics("audit")
    app.state.runtime = SimpleNamespace(metrics=metrics)
    app.state.dispatcher = SimpleNamespace(repos=repos)
    gauges.register(app)
    await metrics.refresh()
    text = metrics.exposition().decode()
    found = {
        s["gardien_webhook_delivery_state"]: v
        for s, v in samples(text, "gardien_webhook_deliveries")
    }
    assert found == {"pending": 2, "delivered": 3, "failed": 1, "cancelled": 1}
    failing = samples(text, "gardien_webhook_consecutive_failures")
    assert sorted((s["gardien_webhook_id"], v) for s, v in failing) == [("wh_1", 4), ("wh_2", 0)]
    assert "x.example" not in text
