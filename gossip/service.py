"""The lifecycle shared by the gossip services (broadcast, anti-entropy): one background task.

``start()`` schedules the service's ``_run`` on the running loop (idempotent); ``aclose()``
sets ``_stopping``, lets the service wake its sleepers (``_on_close``), then cancels and awaits
the task — safe to call twice; ``async with`` does both.
"""

from __future__ import annotations

import abc
import asyncio
from typing import Self

__all__ = ["LoopService"]


class LoopService(abc.ABC):
    """Base of a service whose loops live in one task; subclasses implement ``_run``."""

    def __init__(self, task_name: str) -> None:
        self._task_name = task_name
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closed = False

    @abc.abstractmethod
    async def _run(self) -> None:
        """The service's loops; runs until ``_stopping`` is set (then it is cancelled)."""

    def _on_close(self) -> None:
        """Wake anything the loops sleep on, so they notice ``_stopping`` at once."""

    async def start(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self._task_name} is closed")
        if self._runner is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._runner = asyncio.create_task(self._run(), name=self._task_name)

    async def aclose(self) -> None:
        """Stop the loops (work in flight is cancelled). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._on_close()
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
