"""The background sweeper: retries, escalations and overdue certificates, a batch a tick."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from services.erasure.usecases import Erasure

log = logging.getLogger(__name__)


async def run_sweeper(
    erasure: Erasure,
    tick_seconds: float,
    also: Sequence[Callable[[], Awaitable[object]]] = (),
) -> None:
    """Every tick, advance the cases whose ``next_due_at`` has passed; never dies quietly.

    A full batch is followed at once by the next one (a backlog drains without waiting).
    ``also`` runs once per tick after the sweep (the expiry of delivered access packages).
    """
    while True:
        swept = 0
        try:
            swept = await erasure.sweep()
        except asyncio.CancelledError:
            raise
        except Exception:  # the store may be briefly away: try again next tick
            log.exception("erasure sweep failed")
        for job in also:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("erasure periodic job failed")
        if swept < erasure.settings.sweep_batch:
            await asyncio.sleep(tick_seconds)
        else:
            await asyncio.sleep(0)
