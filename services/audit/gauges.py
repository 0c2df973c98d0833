"""The audit service's business gauges: webhook deliveries by state, failing subscriptions.

Read from the audit store by the metrics task in the background (each state counted up to
``GAUGE_CAP``); attributes are states and subscription ids (``wh_…``), never a URL or a
record's content.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI

from services.audit.usecases import Auditor
from shared.figures import GAUGE_CAP, GAUGE_EVERY, key
from shared.metrics import Key, Metrics


def register(app: FastAPI) -> None:
    """Register the gauges on the app's metrics (the store is read once the service runs)."""
    metrics: Metrics = app.state.runtime.metrics
    auditor: Auditor = app.state.auditor

    async def deliveries() -> Mapping[Key, float]:
        states = await auditor.store.delivery_states(GAUGE_CAP)
        return {key({"gardien.webhook.delivery.state": s}): n for s, n in states.items()}

    async def failures() -> Mapping[Key, float]:
        found = await auditor.store.failing_webhooks()
        return {key({"gardien.webhook.id": w}): n for w, n in found.items()}

    metrics.gauge(
        "gardien.webhook.deliveries",
        "Webhook deliveries by state (pending, delivered, failed, cancelled), capped.",
        "{delivery}",
        deliveries,
        GAUGE_EVERY,
    )
    metrics.gauge(
        "gardien.webhook.consecutive_failures",
        "Failed deliveries in a row of each active webhook subscription (0 when it works).",
        "{delivery}",
        failures,
        GAUGE_EVERY,
    )
