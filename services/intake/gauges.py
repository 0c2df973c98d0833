"""The intake service's business gauge: events left in the requests' outboxes.

Read through the request repository by the metrics task in the background (at most
``GAUGE_CAP`` requests per refresh).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI

from shared.figures import GAUGE_CAP, key, outbox_gauge
from shared.metrics import Key, Metrics


def register(app: FastAPI) -> None:
    """Register the gauge on the app's metrics (read once the use cases are built)."""
    metrics: Metrics = app.state.runtime.metrics

    async def backlog() -> Mapping[Key, float]:
        waiting = await app.state.intake.repos.requests.outbox_backlog(GAUGE_CAP)
        return {key({"db.collection.name": "requests"}): waiting}

    outbox_gauge(metrics, backlog)
