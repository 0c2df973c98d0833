"""Readiness that answers within a bound: checks run concurrently, each with a timeout, cached.

A frozen dependency must make ``/readyz`` say 503 quickly, not hang the probe: an orchestrator's
probe gives up after its own timeout and learns nothing. Concurrent probes share one check.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]


@dataclass
class Readiness:
    """The last result of every check, refreshed at most once per ``ttl`` seconds."""

    checks: Mapping[str, Check]
    timeout: float = 0.8
    ttl: float = 1.0
    _at: float = field(default=-1e9, init=False)
    _last: dict[str, bool] = field(default_factory=dict, init=False)
    _running: asyncio.Task[dict[str, bool]] | None = field(default=None, init=False)

    async def state(self) -> dict[str, bool]:
        """Each check's result, at most ``ttl`` old; never waits much longer than ``timeout``."""
        if time.monotonic() - self._at < self.ttl:
            return dict(self._last)
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._probe())
        return dict(await asyncio.shield(self._running))

    async def _probe(self) -> dict[str, bool]:
        names = list(self.checks)
        results = await asyncio.gather(*(self._bounded(n) for n in names))
        self._last, self._at = dict(zip(names, results, strict=True)), time.monotonic()
        return self._last

    async def _bounded(self, name: str) -> bool:
        try:
            return bool(await asyncio.wait_for(self.checks[name](), self.timeout))
        except TimeoutError:
            log.warning("readiness check %s timed out after %.1f s", name, self.timeout)
        except Exception as exc:  # a failed check means "not ready", never an error page
            log.warning("readiness check %s failed: %s", name, type(exc).__name__)
        return False
