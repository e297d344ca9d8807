"""The per-user cap on open sockets (PAM_MAX_SOCKETS_PER_USER), counted across every server process.

With Redis each socket holds a seat: a member of the user's sorted set scored by its lease's expiry, taken in one Lua
script (Redis's clock). Each process renews its own seats every `HEARTBEAT_S`, so the seats of a process that was
killed free themselves within `LEASE_S`. Without Redis (one process) the seats are counted in process.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from pam_hybrid.process import process_state
from pam_hybrid.redis_client import redis_client, redis_key

logger = logging.getLogger(__name__)

LEASE_S = 60.0
"""How long a seat outlives its process's last heartbeat."""
HEARTBEAT_S = 20.0
"""How often a process renews its seats' leases."""

# KEYS: the user's seats (zset: seat id → lease expiry). ARGV: seat id, cap, lease s. Returns 1 taken, 0 refused.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 1)
return 1
"""

# KEYS: each seat's zset. ARGV: lease s, then each seat's id (in KEYS' order). Renews only seats still there.
_RENEW = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', expiry, ARGV[i + 1])
  redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[1])) + 1)
end
return #KEYS
"""


@dataclass(slots=True)
class _Seats:
    """This process's seats: seat id → the user's key (Redis), or user id → seat ids (in process)."""

    in_redis: dict[str, str] = field(default_factory=dict)
    in_process: dict[str, set[str]] = field(default_factory=dict)
    heartbeat: asyncio.Task[None] | None = None


def _key(user_id: object) -> str:
    return redis_key(f"sockets:{user_id}")


async def take(user_id: object, cap: int, *, lease_s: float = LEASE_S) -> str | None:
    """A seat for a new socket of the user (its id, to release it), or None when the user is at the cap.
    `cap` 0: no cap. A Redis outage lets the socket in uncounted rather than refusing everyone."""
    seat = uuid.uuid4().hex
    seats = process_state().part(_Seats)
    client = redis_client()
    if client is None:
        held = seats.in_process.setdefault(str(user_id), set())
        if cap and len(held) >= cap:
            return None
        held.add(seat)
        return seat
    if cap:
        try:
            if not int(await client.register_script(_TAKE)(keys=[_key(user_id)], args=[seat, cap, lease_s])):
                return None
        except RedisError:
            logger.warning("socket cap: Redis unavailable, the socket is let in uncounted")
            return seat
        seats.in_redis[seat] = _key(user_id)
        _ensure_heartbeat(seats)
    return seat


async def release(user_id: object, seat: str) -> None:
    """The socket has closed: free its seat."""
    seats = process_state().part(_Seats)
    seats.in_process.get(str(user_id), set()).discard(seat)
    key = seats.in_redis.pop(seat, None)
    client = redis_client()
    if key is not None and client is not None:
        try:
            await client.zrem(key, seat)
        except RedisError:
            logger.warning("socket cap: Redis unavailable, a seat frees itself when its lease ends")


async def renew(*, lease_s: float = LEASE_S) -> int:
    """Renew the leases of this process's seats; returns how many."""
    seats = process_state().part(_Seats)
    client = redis_client()
    held = list(seats.in_redis.items())
    if client is None or not held:
        return 0
    await client.register_script(_RENEW)(keys=[key for _, key in held], args=[lease_s, *(s for s, _ in held)])
    return len(held)


def _ensure_heartbeat(seats: _Seats) -> None:
    if seats.heartbeat is None or seats.heartbeat.done():
        seats.heartbeat = asyncio.get_running_loop().create_task(_heartbeat(), name="pam-socket-seats")


async def _heartbeat() -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        try:
            await renew()
        except RedisError:
            logger.warning("socket cap: Redis unavailable, seats not renewed this time")
