"""Per-user bounds on what a user can spend: answers at once, messages per window, and money per UTC day.

Shared by every server process through Redis when REDIS_URL is set (one Lua script, one round trip per message,
Redis's clock), kept in process otherwise. The day's spend is read from the usage records once per user and day,
then kept up to date as answers are saved; an answer already running may take a user past the cap by its own cost.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from channels.db import database_sync_to_async
from django.db.models import Sum
from redis.exceptions import RedisError

from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.chunks import StreamChunk
from pam_hybrid.models import UsageRecord
from pam_hybrid.process import process_state
from pam_hybrid.redis_client import redis_client, redis_key


@dataclass(frozen=True, slots=True)
class Refusal:
    """Which limit refused a message, and when it lets the user go on."""

    code: str
    message: str
    retry_after_s: float

    def chunk(self) -> StreamChunk:
        resets_at = datetime.now(UTC) + timedelta(seconds=self.retry_after_s)
        return StreamChunk("error", self.message, {
            "code": self.code, "retry_after_s": round(self.retry_after_s, 1),
            "resets_at": resets_at.isoformat().replace("+00:00", "Z"),
        })


def _day_start(now: float) -> float:
    return datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _seconds_text(seconds: float) -> str:
    if seconds < 59.5:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _too_many(limit: int, retry_after_s: float) -> Refusal:
    return Refusal("too_many_answers", f"You already have {limit} answers streaming: wait for one to finish or stop "
                   "one, then send again.", retry_after_s)


def _rate_limited(limit: int, window_s: float, retry_after_s: float) -> Refusal:
    return Refusal("rate_limited", f"You have sent {limit} messages in {_seconds_text(window_s)}, the limit. "
                   f"You can send again in {_seconds_text(retry_after_s)}.", retry_after_s)


def _spend_cap(cap: Decimal, retry_after_s: float) -> Refusal:
    return Refusal("spend_cap", f"You have reached today's spending limit of ${cap}. It resets at midnight UTC, "
                   f"in {_seconds_text(retry_after_s)}.", retry_after_s)


@database_sync_to_async
def _spent_since(user_id: object, since: float) -> Decimal:
    # A replay (replay_conversation) is staff's spending in the owner's name: it does not count against the owner.
    total = UsageRecord.objects.filter(
        user_id=str(user_id), created_at__gte=datetime.fromtimestamp(since, UTC),
        message__conversation__replay_of__isnull=True,
    ).aggregate(total=Sum("cost_usd"))["total"]
    return total or Decimal(0)


# --- in process -------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _UserBook:
    answers: dict[str, float] = field(default_factory=dict)  # answer id → expiry
    messages: deque[float] = field(default_factory=deque)
    spend_day: float = 0.0
    spent: Decimal | None = None


class _Books(dict[str, _UserBook]):
    """This process's books, by user id (in-process limits, without REDIS_URL)."""


def _book(user_id: object) -> _UserBook:
    return process_state().part(_Books).setdefault(str(user_id), _UserBook())


async def _admit_in_process(user_id: object, answer_id: uuid.UUID, s: PamSettings, now: float) -> Refusal | None:
    book = _book(user_id)
    day = _day_start(now)
    if book.spent is None or book.spend_day != day:
        spent = await _spent_since(user_id, day)
        book.spend_day, book.spent = day, spent
    assert book.spent is not None
    cap = Decimal(s.daily_spend_cap_usd)
    if cap > 0 and book.spent >= cap:
        return _spend_cap(cap, day + 86400 - now)
    book.answers = {a: expiry for a, expiry in book.answers.items() if expiry > now}
    if len(book.answers) >= s.max_concurrent_answers:
        return _too_many(s.max_concurrent_answers, 1.0)
    window_s = s.rate_limit_window_ms / 1000
    while book.messages and book.messages[0] <= now - window_s:
        book.messages.popleft()
    if len(book.messages) >= s.rate_limit_messages:
        return _rate_limited(s.rate_limit_messages, window_s, book.messages[0] + window_s - now)
    book.messages.append(now)
    book.answers[str(answer_id)] = now + _answer_lease_s(s)
    return None


def _answer_lease_s(s: PamSettings) -> float:
    """How long an answer may hold its place: a crashed process's places free themselves after this."""
    return (s.total_timeout_ms + s.resume_grace_ms) / 1000 + 60


# --- in Redis -------------------------------------------------------------------------------------------------

# KEYS: answers (zset: answer id → lease expiry), messages (zset: message id → time), spend (string, USD)
# ARGV: answer id, max answers, lease s, rate limit, window s, cap (0: none)
# Returns {status, retry_after}: status 0 admitted, 1 too many answers, 2 rate limited, 3 spend cap, 4 spend unknown
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local cap = tonumber(ARGV[6])
if cap > 0 then
  local spent = redis.call('GET', KEYS[3])
  if not spent then return {4, '0'} end
  if tonumber(spent) >= cap then return {3, '0'} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return {1, '1'} end
local window = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {2, tostring(tonumber(oldest[2]) + window - now)}
end
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('EXPIRE', KEYS[2], math.ceil(window) + 1)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 1)
return {0, '0'}
"""


def _keys(user_id: object, day: float) -> list[str]:
    prefix = redis_key(f"limit:{user_id}:")
    return [f"{prefix}answers", f"{prefix}messages", f"{prefix}spend:{datetime.fromtimestamp(day, UTC):%Y-%m-%d}"]


async def _admit_in_redis(client: Any, user_id: object, answer_id: uuid.UUID, s: PamSettings,
                          now: float) -> Refusal | None:
    day = _day_start(now)
    keys = _keys(user_id, day)
    window_s = s.rate_limit_window_ms / 1000
    args = [str(answer_id), s.max_concurrent_answers, _answer_lease_s(s), s.rate_limit_messages, window_s,
            s.daily_spend_cap_usd]
    for _ in range(2):
        status, retry_after = await client.register_script(_ADMIT)(keys=keys, args=args)
        status, retry_after_s = int(status), float(retry_after)
        if status == 4:  # the day's spend is not in Redis yet: read it from the usage records once
            spent = await _spent_since(user_id, day)
            await client.set(keys[2], str(spent), nx=True, ex=2 * 86400)
            continue
        if status == 1:
            return _too_many(s.max_concurrent_answers, retry_after_s)
        if status == 2:
            return _rate_limited(s.rate_limit_messages, window_s, retry_after_s)
        if status == 3:
            return _spend_cap(Decimal(s.daily_spend_cap_usd), day + 86400 - now)
        return None
    return None


# --- the interface --------------------------------------------------------------------------------------------


async def admit(user_id: object, answer_id: uuid.UUID, s: PamSettings) -> Refusal | None:
    """Take a place for a new answer, or say which limit refuses it. A Redis outage lets the message through."""
    now = time.time()
    client = redis_client()
    if client is None:
        return await _admit_in_process(user_id, answer_id, s, now)
    try:
        return await _admit_in_redis(client, user_id, answer_id, s, now)
    except RedisError:
        return None


async def release(user_id: object, answer_id: uuid.UUID, cost_usd: Decimal | None) -> None:
    """The answer has ended: free its place and add its cost to the day's spend."""
    now = time.time()
    client = redis_client()
    if client is None:
        book = _book(user_id)
        book.answers.pop(str(answer_id), None)
        if cost_usd and book.spent is not None and book.spend_day == _day_start(now):
            book.spent += cost_usd
        return
    answers, _, spend = _keys(user_id, _day_start(now))
    try:
        await client.register_script(_RELEASE)(keys=[answers, spend], args=[str(answer_id), str(cost_usd or 0)])
    except RedisError:
        return


# KEYS: answers (zset), spend (string, USD). ARGV: answer id, cost. One round trip for both.
# Only a day already read from the usage records is added to; a missing one is read afresh, this answer included.
_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('INCRBYFLOAT', KEYS[2], ARGV[2]) end
return 0
"""
