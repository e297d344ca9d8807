"""The process's asyncio Redis client (one per event loop), or None when REDIS_URL is unset (one process).

Its timeouts are short: breaker checks and message claims sit on the answer's path, and a Redis that hangs must
cost an answer a second at most (they then go ahead without it), not redis-py's default five.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as redis
from django.conf import settings

from pam_hybrid.providers.client_cache import cached_client


def redis_client(loop: asyncio.AbstractEventLoop | None = None) -> redis.Redis | None:
    url: str = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    return cached_client(
        ("redis", url),
        lambda: redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=0.5, health_check_interval=30),
        loop,
    )
