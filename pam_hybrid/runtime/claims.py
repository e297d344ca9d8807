"""Which answer a user's `client_msg_id` belongs to, so a message re-sent after a reconnect is never run (or
charged) twice. Shared by every process through Redis when REDIS_URL is set (SET NX), else kept in process."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections import OrderedDict

from redis.exceptions import RedisError

from pam_hybrid.redis_client import redis_client, redis_key

logger = logging.getLogger(__name__)

CLAIM_TTL_S = 24 * 3600
_MEMORY_LIMIT = 50_000
_memory: OrderedDict[str, uuid.UUID] = OrderedDict()


def _key(user_id: object, client_msg_id: str) -> str:
    return redis_key(f"claim:{user_id}:{client_msg_id}")


async def claim(user_id: object, client_msg_id: str, message_id: uuid.UUID) -> uuid.UUID | None:
    """Claim the client id for `message_id`; if an earlier answer holds it, that answer's id instead."""
    key = _key(user_id, client_msg_id)
    client = redis_client()
    if client is None:
        held = _memory.get(key)
        if held is not None:
            return held
        _memory[key] = message_id
        if len(_memory) > _MEMORY_LIMIT:
            _memory.popitem(last=False)
        return None
    try:
        held_raw = await client.set(key, str(message_id), nx=True, ex=CLAIM_TTL_S, get=True)
    except RedisError:
        logger.warning("claims: Redis unreachable, message %s runs without its duplicate check", message_id)
        return None
    if held_raw is None:
        return None
    return uuid.UUID(held_raw.decode() if isinstance(held_raw, bytes) else str(held_raw))


async def reclaim(user_id: object, client_msg_id: str, message_id: uuid.UUID) -> None:
    """Take over a claim whose answer never got as far as being saved (its process died before the model
    accepted the request)."""
    key = _key(user_id, client_msg_id)
    client = redis_client()
    if client is None:
        _memory[key] = message_id
    else:
        with contextlib.suppress(RedisError):
            await client.set(key, str(message_id), ex=CLAIM_TTL_S)


async def release(user_id: object, client_msg_id: str) -> None:
    """Give the client id back: its message was refused before it ran, so sending it again should run it."""
    key = _key(user_id, client_msg_id)
    client = redis_client()
    if client is None:
        _memory.pop(key, None)
    else:
        with contextlib.suppress(RedisError):
            await client.delete(key)
