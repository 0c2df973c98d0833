"""The erasure gauges, from the in-memory case repository (no I/O)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from fastapi import FastAPI

from services.erasure import domain, gauges
from services.erasure.memory import MemoryCases
from services.erasure.repository import OpenCase, Write
from shared.metrics import Metrics
from tests.contract.test_erasure_cases import NOW, new_case, opened
from tests.shared.test_metrics import samples


class SlowCases(MemoryCases):
    """Cases whose read takes a while, as a large store's does."""

    async def open_cases(self, cap: int) -> list[OpenCase]:
        await asyncio.sleep(0.05)
        return await super().open_cases(cap)


async def test_open_cases_and_unacknowledged_commands_per_system() -> None:
    await _check_figures(MemoryCases())


async def test_the_commands_figure_comes_from_the_same_read_however_long_it_takes() -> None:
    """The gauges are read side by side: the commands figure must not be the one of the read
    before, taken while this one was still going."""
    await _check_figures(SlowCases())


async def _check_figures(cases: MemoryCases) -> None:
    await cases.save_many([opened(new_case("req:A")), opened(new_case("req:B"))])
    stored = (await cases.get_many(["req:A"]))["req:A"]
    domain.answer(stored.case, "crm", "erased", NOW, lambda _: {})
    await cases.save_many([Write(stored.case, stored, ["ev-a"], [])])
    app, metrics = FastAPI(), Metrics("erasure")
    app.state.runtime = SimpleNamespace(metrics=metrics)
    app.state.erasure = SimpleNamespace(repos=SimpleNamespace(cases=cases))
    gauges.register(app)
    await metrics.refresh()
    text = metrics.exposition().decode()
    assert samples(text, "gardien_erasure_cases") == [({"gardien_case_state": "open"}, 2)]
    commands = {
        (s["gardien_system_id"], s["gardien_command_state"]): v
        for s, v in samples(text, "gardien_erasure_commands_unacknowledged")
    }
    assert commands == {("crm", "sent"): 1, ("billing", "sent"): 2, ("newsletter", "sent"): 2}
    backlog = samples(text, "gardien_outbox_backlog")
    assert backlog == [({"db_collection_name": "cases"}, 8)]
    assert "a@example.org" not in text and "C-1" not in text
