"""The process's asyncio Redis client (one per event loop), or None when REDIS_URL is unset (one process).

Its timeouts are short: breaker checks and message claims sit on the answer's path, and a Redis that hangs must
cost an answer a second at most (they then go ahead without it), not redis-py's default five.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as redis
from django.conf import settings
from redis.driver_info import DriverInfo

from pam_hybrid.process import cached_client

MAX_CONNECTIONS = 256


def redis_key(name: str) -> str:
    """A key in this deployment's namespace (PAM_REDIS_PREFIX), so that several deployments can share one Redis."""
    return f"{getattr(settings, 'PAM_REDIS_PREFIX', 'pam:')}{name}"


def redis_client(loop: asyncio.AbstractEventLoop | None = None) -> redis.Redis | None:
    url: str = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    return cached_client(("redis", url), lambda: _connect(url), loop)


def _connect(url: str) -> redis.Redis:
    # A pool that waits for a free connection (briefly) rather than failing at once when every one is busy: under
    # load redis-py's default pool raised at 100 connections, and breakers and claims went without Redis.
    # One DriverInfo for the pool: without it every new connection looked up redis-py's version in the installed
    # packages' metadata (about 1 ms each), and a burst of messages opens dozens of connections at once.
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=1.0, socket_timeout=1.0, socket_connect_timeout=0.5,
        health_check_interval=30, driver_info=DriverInfo(),
    )
    return redis.Redis(connection_pool=pool)
