"""What a service's lifespan builds, awaited by subscribers that start before it is ready."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Started(Generic[T]):
    """A value set once, at start-up; ``get`` waits for it."""

    def __init__(self) -> None:
        self._ready = asyncio.Event()
        self._value: T | None = None

    def set(self, value: T) -> None:
        self._value = value
        self._ready.set()

    async def get(self) -> T:
        await self._ready.wait()
        assert self._value is not None
        return self._value
