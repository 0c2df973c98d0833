"""The background sweeper: retries, escalations and overdue certificates, from MongoDB."""

from __future__ import annotations

import asyncio
import logging

from services.erasure.usecases import Erasure

log = logging.getLogger(__name__)


async def run_sweeper(erasure: Erasure, tick_seconds: float) -> None:
    """Every tick, advance the cases whose ``next_due_at`` has passed; never dies quietly."""
    while True:
        try:
            await erasure.sweep()
        except asyncio.CancelledError:
            raise
        except Exception:  # the store may be briefly away: try again next tick
            log.exception("erasure sweep failed")
        await asyncio.sleep(tick_seconds)
