"""The erasure service's business gauges: open cases, commands awaiting acknowledgement per
connected system, outbox backlog, access packages waiting to be built.

Read through the case repository by the metrics task in the background, at most
``GAUGE_CAP`` cases per refresh; attributes are states and system ids (from the registry),
never a subject or an identifier.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import FastAPI

from services.erasure.repository import CaseRepository
from shared.figures import GAUGE_CAP, GAUGE_EVERY, SCAN_TIMEOUT, key, outbox_gauge
from shared.metrics import Key, Metrics

AWAITING = ("pending", "sent", "held")  # part states that wait for a system's answer
COMMANDS = "gardien.erasure.commands.unacknowledged"


class CaseFigures:
    """One read of the open cases per refresh, reported by two gauges."""

    def __init__(self, cases: Callable[[], CaseRepository], metrics: Metrics) -> None:
        self.cases = cases
        self.metrics = metrics
        self.commands: dict[Key, float] = {}

    async def open_cases(self) -> Mapping[Key, float]:
        counts: dict[Key, float] = {}
        commands: dict[Key, float] = {}
        for case in await self.cases().open_cases(GAUGE_CAP):
            k = key({"gardien.case.state": case.state})
            counts[k] = counts.get(k, 0) + 1
            for system, state in case.parts.items():
                if state in AWAITING:
                    c = key({"gardien.system.id": system, "gardien.command.state": state})
                    commands[c] = commands.get(c, 0) + 1
        self.commands = commands
        self.metrics.set_gauge(COMMANDS, commands)  # with the counts, from the same read
        return counts

    async def unacknowledged(self) -> Mapping[Key, float]:
        return self.commands

    async def outbox(self) -> Mapping[Key, float]:
        return {key({"db.collection.name": "cases"}): await self.cases().outbox_backlog(GAUGE_CAP)}


def register(app: FastAPI) -> None:
    """Register the gauges on the app's metrics (read once the use cases are built)."""
    metrics: Metrics = app.state.runtime.metrics
    figures = CaseFigures(lambda: app.state.erasure.repos.cases, metrics)
    metrics.gauge(
        "gardien.erasure.cases",
        "Open erasure cases by state (open, escalated).",
        "{case}",
        figures.open_cases,
        GAUGE_EVERY,
        timeout=SCAN_TIMEOUT,  # reads every open case's parts: 10,000 outlast the default 5 s
    )
    metrics.gauge(
        COMMANDS,
        "Commands of open cases awaiting a system's acknowledgement, by system and state.",
        "{command}",
        figures.unacknowledged,
        GAUGE_EVERY,
    )
    outbox_gauge(metrics, figures.outbox)
    metrics.gauge(
        "gardien.erasure.packages.waiting",
        "Access packages of ready collection cases waiting to be built in this process.",
        "{package}",
        lambda: packages_waiting(app),
        15.0,  # in memory: no read to spare
    )


async def packages_waiting(app: FastAPI) -> Mapping[Key, float]:
    """The builder's backlog (``services/erasure/builder.py``), once the service started."""
    queue = getattr(app.state, "package_queue", None)
    return {key({}): queue.backlog()} if queue is not None else {}
