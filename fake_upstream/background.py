"""An event loop in a thread of its own: how the fake runs beside synchronous tests and benchmarks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any


class LoopThread:
    """A daemon thread running an event loop, from a coroutine that starts something in it until one that ends it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, begin: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``begin()`` in a new thread's loop and keep the loop running; returns once ``begin`` is done, raising
        what it raised."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(begin())
            except BaseException as err:  # reported to the starting thread
                failure.append(err)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name=self.name, daemon=True)
        thread.start()
        started.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._loop, self._thread = loop, thread

    def stop(self, end: Callable[[], Coroutine[Any, Any, None]], timeout: float) -> None:
        """Run ``end()`` in the loop, then stop the loop and join the thread."""
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(end(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = self._loop = None
