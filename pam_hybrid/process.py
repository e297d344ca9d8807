"""This server process's state: one `ProcessState` per event loop, holding every per-process part in one place.

A server process runs one loop, so this is one object per process: the SDK clients and the Redis client, the
answers in flight, the per-user limit books, the batched writers, the relay channel and the upkeep task. Each
layer keeps its own part here (typed by the part's class) instead of a module-level global of its own. Keying by
loop keeps a client's connection pool from being used on a loop it was not created on (as happens in tests,
which run one loop per test); a loop that is gone takes its state with it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class ProcessState:
    """The parts of one process (one event loop), each made on first use."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._parts: dict[object, object] = {}

    def part(self, kind: type[T]) -> T:
        """The process's one `kind` (made with no arguments on first use)."""
        return self.keyed(kind, kind)

    def keyed(self, key: object, factory: Callable[[], T]) -> T:
        """The part stored under `key`, made by `factory` on first use (several of one kind, such as SDK clients).

        Safe to call from a worker thread for a given loop: if two callers race, one part wins.
        """
        found = self._parts.get(key)
        if found is None:
            found = self._parts.setdefault(key, factory())
        return found  # type: ignore[return-value]


_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ProcessState] = weakref.WeakKeyDictionary()


def process_state(loop: asyncio.AbstractEventLoop | None = None) -> ProcessState:
    """The state of the process running `loop` (default: the running loop)."""
    loop = loop or asyncio.get_running_loop()
    state = _states.get(loop)
    if state is None:
        state = _states.setdefault(loop, ProcessState(loop))
    return state


def cached_client(key: Hashable, factory: Callable[[], T], loop: asyncio.AbstractEventLoop | None = None) -> T:
    """The client for `key` (one per provider configuration per process), made by `factory` on first use."""
    return process_state(loop).keyed(("client", key), factory)
