"""Which server process runs each answer in flight: answer id → that process's channel, kept in Redis so that a
socket on another process can follow it (pam_hybrid.runtime.relay), and whether that process is still alive (a
heartbeat of its own, much shorter than the answers' leases). Unused, and empty, with a single process."""

from __future__ import annotations

import contextlib
import logging
import uuid

from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from pam_hybrid.conf import pam_settings
from pam_hybrid.process import process_state
from pam_hybrid.redis_client import redis_client, redis_key

logger = logging.getLogger(__name__)


class _LocalChannel:
    """The channel this process listens on for followers from other processes."""

    name: str | None = None


def set_local_channel(channel: str) -> None:
    process_state().part(_LocalChannel).name = channel


def local_channel() -> str | None:
    """The channel this process listens on for followers from other processes (None: not listening)."""
    return process_state().part(_LocalChannel).name


def shared() -> bool:
    """Whether answers can be followed across processes (Redis and a channel layer are configured)."""
    return redis_client() is not None and get_channel_layer() is not None


def _key(message_id: uuid.UUID | str) -> str:
    return redis_key(f"answer:{message_id}")


LEASE_MIN_S = 30
"""Shortest lease of an owner's entry: other processes' renewals can be late too (a busy event loop)."""


def lease_s() -> int:
    """How long an owner's entry outlives its process's last renewal (as long as the sweep waits for its rows), so
    that a process that was killed stops being followed, and its re-sent messages can run elsewhere."""
    return max(LEASE_MIN_S, 3 * pam_settings().checkpoint_interval_ms // 1000)


async def announce(message_id: uuid.UUID, channel: str) -> None:
    """Record that the process listening on `channel` runs the answer (renewed by `renew` while it runs)."""
    client = redis_client()
    if client is None:
        return
    try:
        await client.set(_key(message_id), channel, ex=lease_s())
    except RedisError:
        logger.warning("owners: could not announce answer %s; other processes cannot follow it", message_id)


async def renew(message_ids: list[uuid.UUID]) -> None:
    """Extend the leases of this process's answers in flight (from its upkeep, every checkpoint interval)."""
    client = redis_client()
    if client is None or not message_ids:
        return
    try:
        async with client.pipeline(transaction=False) as pipe:
            for message_id in message_ids:
                pipe.expire(_key(message_id), lease_s())
            await pipe.execute()
    except RedisError:
        logger.warning("owners: could not renew %d answers' leases", len(message_ids))


async def retract(message_id: uuid.UUID) -> None:
    client = redis_client()
    if client is not None:
        with contextlib.suppress(RedisError):
            await client.delete(_key(message_id))


async def owner_of(message_id: uuid.UUID) -> str | None:
    client = redis_client()
    if client is None:
        return None
    try:
        raw = await client.get(_key(message_id))
    except RedisError:
        return None
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


HEARTBEAT_INTERVAL_S = 2.0
HEARTBEAT_TTL_S = 10
"""A process whose heartbeat is this old is dead: five missed beats, longer than any loop lag measured in the soak
(seconds at 500 sockets on one busy process), and a third of the shortest answer lease."""


def _alive_key(channel: str) -> str:
    return redis_key(f"process:{channel}")


async def beat(channel: str) -> None:
    """Say that the process listening on `channel` is alive (every HEARTBEAT_INTERVAL_S, from its relay)."""
    client = redis_client()
    if client is not None:
        try:
            await client.set(_alive_key(channel), 1, ex=HEARTBEAT_TTL_S)
        except RedisError:
            logger.warning("owners: could not renew this process's heartbeat")


async def alive(channel: str) -> bool:
    """Whether the process listening on `channel` beat within HEARTBEAT_TTL_S (True when Redis cannot say)."""
    client = redis_client()
    if client is None:
        return True
    try:
        return bool(await client.exists(_alive_key(channel)))
    except RedisError:
        return True


_RETRACT_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


async def retract_dead(message_id: uuid.UUID, channel: str) -> None:
    """Forget that the dead process on `channel` runs the answer, unless another process has announced it since."""
    client = redis_client()
    if client is not None:
        with contextlib.suppress(RedisError):
            await client.eval(_RETRACT_IF, 1, _key(message_id), channel)
