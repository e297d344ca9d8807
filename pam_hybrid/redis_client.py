"""The process's Redis connections: the app's asyncio client (one per event loop, or None when REDIS_URL is unset)
and the channel layer's class, each on a blocking pool of a deliberate size.

Both pools wait up to PAM_REDIS_POOL_TIMEOUT_MS for a free connection when all of theirs are busy, instead of
failing at once as redis-py's default pool does at its 100th connection (a burst of sockets connecting failed their
`group_add` with "Too many connections"). The two are kept apart on purpose: the layer's connections block for
seconds in BZPOPMIN and so have no read timeout, while the app's have short timeouts (breaker checks and message
claims sit on the answer's path, and a Redis that hangs must cost an answer a second at most, not redis-py's default
five; they then go ahead without it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as redis
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pam_hybrid.conf import pam_settings
from pam_hybrid.process import cached_client

logger = logging.getLogger(__name__)

RECEIVE_RETRY_S = 0.5
"""Pause before the channel layer reads again after Redis could not be reached."""


def redis_key(name: str) -> str:
    """A key in this deployment's namespace (PAM_REDIS_PREFIX), so that several deployments can share one Redis."""
    return f"{getattr(settings, 'PAM_REDIS_PREFIX', 'pam:')}{name}"


def redis_client(loop: asyncio.AbstractEventLoop | None = None) -> redis.Redis | None:
    url: str = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    return cached_client(("redis", url), lambda: _connect(url), loop)


def _connect(url: str) -> redis.Redis:
    # One DriverInfo for the pool: without it every new connection looked up redis-py's version in the installed
    # packages' metadata (about 1 ms each), and a burst of messages opens dozens of connections at once.
    knobs = pam_settings()
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=knobs.redis_connections, timeout=knobs.redis_pool_timeout_ms / 1000, socket_timeout=1.0,
        socket_connect_timeout=0.5, health_check_interval=30, driver_info=DriverInfo(),
    )
    return redis.Redis(connection_pool=pool)


class ChannelLayer(RedisChannelLayer):
    """channels-redis's `RedisChannelLayer` (4.x), its pool per event loop and host a blocking one of
    `max_connections`, waiting up to `pool_timeout_s` for a free connection.

    channels-redis 4.3 builds a plain `ConnectionPool` from each host's options (`create_pool`), so the host dict can
    size it but not make it wait; this override is the one place that changes. One of the connections is held by the
    process's receive loop (a blocking BZPOPMIN of up to five seconds), the rest serve group_add/discard and sends.
    """

    def __init__(self, *, max_connections: int = 100, pool_timeout_s: float = 5.0, **config: Any) -> None:
        super().__init__(**config)
        self.max_connections = max_connections
        self.pool_timeout_s = pool_timeout_s

    def create_pool(self, index: int) -> redis.ConnectionPool:
        host = dict(self.hosts[index])
        address = host.pop("address", None)
        if address is None:  # (host/port or sentinel entries: channels-redis's own pool)
            pool: redis.ConnectionPool = super().create_pool(index)
            return pool
        return redis.BlockingConnectionPool.from_url(
            address, max_connections=self.max_connections, timeout=self.pool_timeout_s, driver_info=DriverInfo(),
            **host,
        )

    async def receive(self, channel: str) -> dict[str, Any]:
        while True:
            try:
                message: dict[str, Any] = await super().receive(channel)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                logger.warning("channel layer: Redis unavailable while receiving (%s), reading again", exc)
                await asyncio.sleep(RECEIVE_RETRY_S)
            else:
                return message
