"""Which answer a user's `client_msg_id` belongs to, so a message re-sent after a reconnect is never run (or
charged) twice. Shared by every process through Redis when REDIS_URL is set (claimed in the admission's one script,
`preflight`, or with SET NX), else kept in process; without Redis (unset, or unreachable) an answer already saved
for the client id, in any process before a restart, holds it too."""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict

from channels.db import database_sync_to_async
from django.contrib.auth.base_user import AbstractBaseUser
from redis.exceptions import RedisError

from pam_hybrid.conversations import selectors
from pam_hybrid.redis_client import redis_client, redis_key

logger = logging.getLogger(__name__)

CLAIM_TTL_S = 24 * 3600
_MEMORY_LIMIT = 50_000
_memory: OrderedDict[str, uuid.UUID] = OrderedDict()

_TAKE_OVER = """
local held = redis.call('get', KEYS[1])
if held and held ~= ARGV[1] then return held end
redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3])
return false
"""


def key(user_id: object, client_msg_id: str) -> str:
    """The Redis key of a user's client id (its value: the id of the answer that holds it)."""
    return redis_key(f"claim:{user_id}:{client_msg_id}")


def holder_of(raw: object) -> uuid.UUID:
    """The answer id a claim's value names."""
    return uuid.UUID(raw.decode() if isinstance(raw, bytes) else str(raw))


async def saved_holder(user: AbstractBaseUser, client_msg_id: str) -> uuid.UUID | None:
    """The answer saved for this client id, if any: the claim of last resort, when Redis cannot say."""
    return await database_sync_to_async(selectors.answer_id_for_client_msg_id)(user=user, client_msg_id=client_msg_id)


async def claim(user: AbstractBaseUser, client_msg_id: str, message_id: uuid.UUID) -> uuid.UUID | None:
    """Claim the client id for `message_id`; if an earlier answer holds it, that answer's id instead."""
    claim_key = key(user.pk, client_msg_id)
    client = redis_client()
    if client is None:
        held = _memory.get(claim_key) or await saved_holder(user, client_msg_id)
        if held is not None:
            return held
        _memory[claim_key] = message_id
        if len(_memory) > _MEMORY_LIMIT:
            _memory.popitem(last=False)
        return None
    try:
        held_raw = await client.set(claim_key, str(message_id), nx=True, ex=CLAIM_TTL_S, get=True)
    except RedisError:
        logger.warning("claims: Redis unreachable, message %s checked against the saved answers only", message_id)
        return await saved_holder(user, client_msg_id)
    return None if held_raw is None else holder_of(held_raw)


async def reclaim(user: AbstractBaseUser, client_msg_id: str, held: uuid.UUID,
                  message_id: uuid.UUID) -> uuid.UUID | None:
    """Take over the claim of `held`, an answer that never got as far as being saved (its process died before the
    model accepted the request), for `message_id`. Returns None once it is ours; the id of the answer that holds it
    if another re-send took it over first (so that only one of them runs)."""
    claim_key = key(user.pk, client_msg_id)
    client = redis_client()
    if client is None:
        current = _memory.get(claim_key)
        if current is not None and current != held:
            return current
        _memory[claim_key] = message_id
        return None
    try:
        taken = await client.eval(_TAKE_OVER, 1, claim_key, str(held), str(message_id), CLAIM_TTL_S)
    except RedisError:
        return None
    return None if taken is None else holder_of(taken)


async def release(user: AbstractBaseUser, client_msg_id: str) -> None:
    """Give the client id back: its message was refused before it ran, so sending it again should run it."""
    claim_key = key(user.pk, client_msg_id)
    client = redis_client()
    if client is None:
        _memory.pop(claim_key, None)
    else:
        try:
            await client.delete(claim_key)
        except RedisError:
            logger.warning("claims: could not release %s", claim_key)
