"""The deadlines service's business gauges: clocks by kind and status, time left, outbox.

Figures are read through the repositories by the metrics task in the background
(``shared.metrics.Metrics.run``), at most ``GAUGE_CAP`` clocks per refresh; attributes are
the clock kind and status only, never a subject or a request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import FastAPI

from services.deadlines.domain import gauge_status, to_ms
from services.deadlines.repository import Repositories
from shared.clock import Clock
from shared.figures import GAUGE_CAP, key, outbox_gauge
from shared.metrics import Key, Metrics

KIND, STATUS = "gardien.timer.kind", "gardien.timer.status"


class ClockFigures:
    """One read of the open clocks per refresh, reported by two gauges."""

    def __init__(self, repos: Callable[[], Repositories], clock: Clock) -> None:
        self.repos, self.clock = repos, clock
        self.left: dict[Key, float] = {}

    async def timers(self) -> Mapping[Key, float]:
        now = to_ms(self.clock.now())
        counts: dict[Key, float] = {}
        nearest: dict[str, int] = {}
        for doc in await self.repos().timers.open_clocks(GAUGE_CAP):
            kind, due = str(doc["kind"]), int(doc["due_ms"])
            status = gauge_status(kind, str(doc.get("state")), due, now)
            k = key({KIND: kind, STATUS: status})
            counts[k] = counts.get(k, 0) + 1
            if due >= now:
                nearest[kind] = min(due, nearest.get(kind, due))
        self.left = {key({KIND: k}): (due - now) / 1000 for k, due in nearest.items()}
        return counts

    async def time_left(self) -> Mapping[Key, float]:
        return self.left

    async def outbox(self) -> Mapping[Key, float]:
        backlog = await self.repos().timers.outbox_backlog(GAUGE_CAP)
        return {key({"db.collection.name": "timers"}): backlog}


def register(app: FastAPI, clock: Clock) -> None:
    """Register the gauges on the app's metrics (read once the repositories exist)."""
    metrics: Metrics = app.state.runtime.metrics
    figures = ClockFigures(lambda: app.state.repositories, clock)
    metrics.gauge(
        "gardien.deadlines.timers",
        "Open clocks by kind and status (pending, approaching, due, overdue).",
        "{timer}",
        figures.timers,
    )
    metrics.gauge(
        "gardien.deadlines.time_left",
        "Seconds until the nearest deadline of an open clock of each kind not yet passed.",
        "s",
        figures.time_left,
    )
    outbox_gauge(metrics, figures.outbox)
