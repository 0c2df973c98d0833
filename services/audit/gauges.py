"""The audit service's business gauges: webhook deliveries by state, failing subscriptions.

Read from the audit store by the metrics task in the background (each state counted up to
``GAUGE_CAP``); attributes are states and subscription ids (``wh_…``), never a URL or a
record's content.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI

from services.audit.repository import Repositories
from shared.figures import GAUGE_CAP, GAUGE_EVERY, key
from shared.metrics import GaugeSource, Key, Metrics


def register(app: FastAPI) -> None:
    """Register the gauges on the app's metrics (the store is read once the service runs)."""
    metrics: Metrics = app.state.runtime.metrics

    def repos() -> Repositories | None:  # built by the lifespan (services.audit.app.attach)
        dispatcher = getattr(app.state, "dispatcher", None)
        return None if dispatcher is None else dispatcher.repos

    async def deliveries() -> Mapping[Key, float]:
        built = repos()
        states = await built.deliveries.states(GAUGE_CAP) if built else {}
        return {key({"gardien.webhook.delivery.state": s}): n for s, n in states.items()}

    async def failures() -> Mapping[Key, float]:
        built = repos()
        found = await built.webhooks.failing() if built else {}
        return {key({"gardien.webhook.id": w}): n for w, n in found.items()}

    _publish(metrics, deliveries, failures)


def _publish(metrics: Metrics, deliveries: GaugeSource, failures: GaugeSource) -> None:
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
