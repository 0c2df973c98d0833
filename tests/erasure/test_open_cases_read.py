"""The gauges' read of every open case holds a page of documents at a time (real nx-27017).

Each minute the erasure gauges read up to 10,000 open cases with their parts (~9 KB a case
with ten systems); read whole, that was the fan-out's memory peak (+110 MiB at 3,000 open
cases, docs/performance.md "Fan-out peak memory (fifth pass)").
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from services.erasure.mongo import OPEN, MongoCases
from shared.mongo import service_database
from shared.settings import Settings

CASES = 400
SYSTEMS = 10


def case_doc(i: int) -> dict[str, Any]:
    """A stored case of ten parts, each as large as a real one (sealed identifiers, art 19)."""
    parts = {
        f"s{k}": {"system": f"sys-{k}", "state": "sent" if k else "acknowledged", "pad": "x" * 800}
        for k in range(SYSTEMS)
    }
    return {"_id": f"req:M-{i:04d}", "state": "open", "systems": parts, "revision": 3}


async def traced_peak(read: Callable[[], Awaitable[object]]) -> tuple[object, int]:
    """What ``read`` returns and the most memory Python held while it ran."""
    tracemalloc.start()
    try:
        found = await read()
        return found, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.integration
async def test_the_open_cases_are_read_a_page_at_a_time(
    settings: Settings, mongo_client: Any
) -> None:
    db = service_database(mongo_client, settings, "erasure")
    await db["cases"].insert_many([case_doc(i) for i in range(CASES)])
    await db["cases"].insert_one({**case_doc(CASES), "_id": "req:M-closed", "state": "closed"})
    repo = MongoCases(db, page_size=25)
    await repo.open_cases(10)  # the first call's caches and connection are not the read's

    def whole() -> Awaitable[object]:
        return db["cases"].find(OPEN, {"state": 1, "systems": 1}).to_list(CASES)

    _, whole_peak = await traced_peak(whole)
    found, paged_peak = await traced_peak(lambda: repo.open_cases(1000))

    assert isinstance(found, list) and len(found) == CASES  # the closed one is not open
    assert found[0].state == "open"
    assert found[0].parts == {f"sys-{k}": "sent" if k else "acknowledged" for k in range(10)}
    assert paged_peak < whole_peak / 4, (paged_peak, whole_peak)


@pytest.mark.integration
async def test_the_cap_still_bounds_a_paged_read(settings: Settings, mongo_client: Any) -> None:
    db = service_database(mongo_client, settings, "erasure")
    await db["cases"].insert_many([case_doc(i) for i in range(120)])
    repo = MongoCases(db, page_size=50)
    assert len(await repo.open_cases(75)) == 75
    assert len(await repo.open_cases(500)) == 120
    assert await repo.open_cases(0) == []
