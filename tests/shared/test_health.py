"""Readiness is bounded: a hanging dependency makes /readyz say 503, it never hangs the probe."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from gardien import stack
from services.intake.app import create_app as intake_app
from shared.health import Readiness
from shared.settings import Settings
from tests.support import running


async def _hang() -> bool:
    await asyncio.sleep(3600)
    return True


async def _ok() -> bool:
    return True


async def _boom() -> bool:
    raise ConnectionError("refused")


async def test_a_hanging_or_failing_check_is_not_ready() -> None:
    ready = Readiness({"ok": _ok, "hang": _hang, "boom": _boom}, timeout=0.05)
    assert await ready.state() == {"ok": True, "hang": False, "boom": False}


async def test_results_are_cached_and_concurrent_probes_share_one_check() -> None:
    calls = 0

    async def counted() -> bool:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return True

    ready = Readiness({"c": counted}, timeout=1, ttl=60)
    results = await asyncio.gather(*(ready.state() for _ in range(5)))
    assert results == [{"c": True}] * 5
    assert await ready.state() == {"c": True}
    assert calls == 1


@pytest.mark.integration
async def test_readyz_says_503_promptly_when_mongodb_is_frozen(
    settings: Settings, tmp_path: Path
) -> None:
    mongo = stack.start_mongo(tmp_path, stack.free_port())
    port = int(mongo.args[mongo.args.index("-p") + 1])
    own = settings.model_copy(update={"mongodb_uri": f"mongodb://127.0.0.1:{port}"})
    try:
        async with running(intake_app(own)) as intake:
            assert (await intake.get("/readyz")).status_code == 200
            os.kill(mongo.pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(1.1)  # past the cache
                # The bound is the probe's own; 5 s here only keeps a regression from hanging.
                r = await asyncio.wait_for(intake.get("/readyz"), 5)
                assert r.status_code == 503
                assert r.json()["checks"] == {"kafka": True, "mongodb": False}
            finally:
                os.kill(mongo.pid, signal.SIGCONT)
    finally:
        stack.terminate_all([mongo])
