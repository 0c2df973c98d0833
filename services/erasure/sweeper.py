"""The background sweeper: retries, escalations and overdue certificates, a batch a tick."""

from __future__ import annotations

import asyncio
import logging

from services.erasure.usecases import Erasure

log = logging.getLogger(__name__)


async def run_sweeper(erasure: Erasure, tick_seconds: float) -> None:
    """Every tick, advance the cases whose ``next_due_at`` has passed; never dies quietly.

    A full batch is followed at once by the next one (a backlog drains without waiting).
    """
    while True:
        swept = 0
        try:
            swept = await erasure.sweep()
        except asyncio.CancelledError:
            raise
        except Exception:  # the store may be briefly away: try again next tick
            log.exception("erasure sweep failed")
        if swept < erasure.settings.sweep_batch:
            await asyncio.sleep(tick_seconds)
        else:
            await asyncio.sleep(0)
