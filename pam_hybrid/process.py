"""One SDK client per provider configuration per event loop, reused across requests.

A server process runs one loop, so this is one client per provider per process. Keying by loop as well
keeps a client's connection pool from being used on a loop it was not created on (as happens in tests).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, object]] = weakref.WeakKeyDictionary()


def cached_client(key: Hashable, factory: Callable[[], T], loop: asyncio.AbstractEventLoop | None = None) -> T:
    """The client for `key` on `loop` (default: the running loop), made by `factory` on first use.

    Safe to call from a worker thread with an explicit loop: if two callers race, one client wins.
    """
    per_loop = _clients.setdefault(loop or asyncio.get_running_loop(), {})
    client = per_loop.get(key)
    if client is None:
        client = per_loop.setdefault(key, factory())
    return client  # type: ignore[return-value]
