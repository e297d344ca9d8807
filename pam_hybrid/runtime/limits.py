"""Per-user bounds on what a user can spend: answers at once, messages per window, and money per UTC day.

Shared by every server process through Redis when REDIS_URL is set (one Lua script, one round trip per message,
Redis's clock), kept in process otherwise. The day's spend is read from the provider-call rows once per user and day,
then kept up to date as answers are saved; an answer already running may take a user past the cap by its own cost.
The spend counts estimated costs as they are, and a call whose model has no price at the highest known rates
(`spend_of`): never as nothing.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from channels.db import database_sync_to_async
from django.db.models import Sum
from redis.exceptions import RedisError

from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.answer import Answer
from pam_hybrid.domain.chunks import StreamChunk, Usage
from pam_hybrid.domain.pricing import Price, Rates, cost_of
from pam_hybrid.models import ModelCallRecord
from pam_hybrid.pricing import overrides_by_model, shipped_prices
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


@dataclass(frozen=True, slots=True)
class Admitted:
    """The message may run. `spent_usd`: the user's spend today as the cap counts it, read by the same check (None:
    not known, with no cap or while Redis is out)."""

    spent_usd: Decimal | None


def near_cap(spent_usd: Decimal | None, s: PamSettings) -> bool:
    """Whether the user has spent the share of today's cap (PAM_BUDGET_ROUTING_AT) from which `auto` takes the simple
    route; never without a cap, with the share 0, or when the spend is not known."""
    cap, share = Decimal(s.daily_spend_cap_usd), Decimal(str(s.budget_routing_at))
    return spent_usd is not None and cap > 0 and share > 0 and spent_usd >= cap * share


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


def ceiling_price() -> Price:
    """The price the spend cap counts a call of an unpriced model at: each rate the highest of any known price
    (shipped or overridden, any period, long-context tiers included)."""
    prices = [price for table in (shipped_prices(), overrides_by_model()) for rows in table.values() for price in rows]
    rates = [price.rates for price in prices] + [p.long_context.rates for p in prices if p.long_context is not None]
    return Price("ceiling", Rates(*(max(getattr(r, f.name) for r in rates) for f in fields(Rates))))


def spend_of(answer: Answer | None) -> Decimal:
    """What an answer counts against the cap: its calls' costs, estimated ones included, and a call of a model
    with no price at `ceiling_price`."""
    spent = Decimal(0)
    for call in answer.calls if answer is not None else ():
        spent += call.cost_usd if call.cost_usd is not None else cost_of(ceiling_price(), call.usage)
    return spent


_TOKEN_SUMS = {f"n_{name}": Sum(name) for name in (
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
)}


@database_sync_to_async
def _spent_since(user_id: object, since: float) -> Decimal:
    # A replay (replay_conversation) is staff's spending in the owner's name: it does not count against the owner.
    calls = ModelCallRecord.objects.filter(
        usage_record__user_id=str(user_id), usage_record__created_at__gte=datetime.fromtimestamp(since, UTC),
        usage_record__message__conversation__replay_of__isnull=True,
    )
    known = calls.aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)
    unknown = calls.filter(cost_usd__isnull=True).aggregate(**_TOKEN_SUMS)
    if unknown["n_input_tokens"] is None:
        return known
    sums = {key: value or 0 for key, value in unknown.items()}
    usage = Usage(
        input_tokens=sums["n_input_tokens"], output_tokens=sums["n_output_tokens"],
        cached_input_tokens=sums["n_cache_read_tokens"],
        cache_creation_input_tokens=sums["n_cache_write_5m_tokens"] + sums["n_cache_write_1h_tokens"],
        cache_write_1h_tokens=sums["n_cache_write_1h_tokens"],
    )
    return known + cost_of(ceiling_price(), usage)


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


async def _admit_in_process(user_id: object, answer_id: uuid.UUID, s: PamSettings, now: float) -> Refusal | Admitted:
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
    return Admitted(book.spent)


def _answer_lease_s(s: PamSettings) -> float:
    """How long an answer may hold its place: a crashed process's places free themselves after this."""
    return (s.total_timeout_ms + s.resume_grace_ms) / 1000 + 60


# --- in Redis -------------------------------------------------------------------------------------------------

# LK: answers (zset: answer id → lease expiry), messages (zset: message id → time), spend (string, USD)
# LA: answer id, max answers, lease s, rate limit, window s, cap (0: none)
# Returns {status, retry_after, spent}: status 0 admitted, 1 too many answers, 2 rate limited, 3 spend cap, 4 spend
# unknown; spent: the day's spend ('' without a cap). A function of its keys and arguments, so that the admission's
# one script (pam_hybrid.runtime.preflight) runs it too.
ADMIT_FUNCTION = """
local function limits_admit(LK, LA)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
  local cap = tonumber(LA[6])
  local spent = ''
  if cap > 0 then
    spent = redis.call('GET', LK[3])
    if not spent then return {4, '0'} end
    if tonumber(spent) >= cap then return {3, '0'} end
  end
  redis.call('ZREMRANGEBYSCORE', LK[1], '-inf', now)
  if redis.call('ZCARD', LK[1]) >= tonumber(LA[2]) then return {1, '1'} end
  local window = tonumber(LA[5])
  redis.call('ZREMRANGEBYSCORE', LK[2], '-inf', now - window)
  if redis.call('ZCARD', LK[2]) >= tonumber(LA[4]) then
    local oldest = redis.call('ZRANGE', LK[2], 0, 0, 'WITHSCORES')
    return {2, tostring(tonumber(oldest[2]) + window - now)}
  end
  redis.call('ZADD', LK[2], now, LA[1])
  redis.call('EXPIRE', LK[2], math.ceil(window) + 1)
  redis.call('ZADD', LK[1], now + tonumber(LA[3]), LA[1])
  redis.call('EXPIRE', LK[1], math.ceil(tonumber(LA[3])) + 1)
  return {0, '0', spent}
end
"""
_ADMIT = ADMIT_FUNCTION + "return limits_admit(KEYS, ARGV)"

SPEND_UNKNOWN = 4
"""The status of a check that found no spend for the day in Redis: `spend_load` it, then check again."""


def _keys(user_id: object, day: float) -> list[str]:
    prefix = redis_key(f"limit:{user_id}:")
    return [f"{prefix}answers", f"{prefix}messages", f"{prefix}spend:{datetime.fromtimestamp(day, UTC):%Y-%m-%d}"]


@dataclass(frozen=True, slots=True)
class Check:
    """One admission check in Redis: its script's keys and arguments, and how to read its reply."""

    user_id: object
    settings: PamSettings
    now: float
    keys: list[str]
    args: list[Any]

    def outcome(self, status: int, retry_after_s: float, spent: bytes | str | None) -> Refusal | Admitted:
        """What a reply other than SPEND_UNKNOWN means."""
        s = self.settings
        if status == 1:
            return _too_many(s.max_concurrent_answers, retry_after_s)
        if status == 2:
            return _rate_limited(s.rate_limit_messages, s.rate_limit_window_ms / 1000, retry_after_s)
        if status == 3:
            return _spend_cap(Decimal(s.daily_spend_cap_usd), _day_start(self.now) + 86400 - self.now)
        return Admitted(None if spent is None else _decimal(spent))

    async def spend_load(self, client: Any) -> None:
        """Read the day's spend from the usage records into Redis (once per user and day, unless it is there)."""
        spent = await _spent_since(self.user_id, _day_start(self.now))
        await client.set(self.keys[2], str(spent), nx=True, ex=2 * 86400)


def check(user_id: object, answer_id: uuid.UUID, s: PamSettings) -> Check:
    """The Redis check that takes a place for `answer_id` (ADMIT_FUNCTION's keys and arguments)."""
    now = time.time()
    args = [str(answer_id), s.max_concurrent_answers, _answer_lease_s(s), s.rate_limit_messages,
            s.rate_limit_window_ms / 1000, s.daily_spend_cap_usd]
    return Check(user_id, s, now, _keys(user_id, _day_start(now)), args)


async def _admit_in_redis(client: Any, user_id: object, answer_id: uuid.UUID, s: PamSettings) -> Refusal | Admitted:
    checking = check(user_id, answer_id, s)
    for _ in range(2):
        status, retry_after, *spent = await client.register_script(_ADMIT)(keys=checking.keys, args=checking.args)
        if int(status) == SPEND_UNKNOWN:
            await checking.spend_load(client)
            continue
        return checking.outcome(int(status), float(retry_after), spent[0] if spent else None)
    return Admitted(None)


def _decimal(raw: bytes | str) -> Decimal | None:
    text = raw.decode() if isinstance(raw, bytes) else raw
    return Decimal(text) if text else None


# --- the interface --------------------------------------------------------------------------------------------


async def admit(user_id: object, answer_id: uuid.UUID, s: PamSettings) -> Refusal | Admitted:
    """Take a place for a new answer (with the day's spend it was checked against), or say which limit refuses it.
    A Redis outage lets the message through."""
    client = redis_client()
    if client is None:
        return await _admit_in_process(user_id, answer_id, s, time.time())
    try:
        return await _admit_in_redis(client, user_id, answer_id, s)
    except RedisError:
        return Admitted(None)


async def release(user_id: object, answer_id: uuid.UUID, cost_usd: Decimal | None) -> None:
    """The answer has ended: free its place and add what it counts against the cap (`spend_of`) to the day's
    spend."""
    now = time.time()
    client = redis_client()
    if client is None:
        book = _book(user_id)
        book.answers.pop(str(answer_id), None)
        if cost_usd and book.spent is not None and book.spend_day == _day_start(now):
            book.spent += cost_usd
        return
    try:
        await client.register_script(_RELEASE)(keys=release_keys(user_id), args=[str(answer_id), str(cost_usd or 0)])
    except RedisError:
        return


# LK: answers (zset), spend (string, USD). LA: answer id, cost. One round trip for both.
# Only a day already read from the usage records is added to; a missing one is read afresh, this answer included.
RELEASE_FUNCTION = """
local function limits_release(LK, LA)
  redis.call('ZREM', LK[1], LA[1])
  if tonumber(LA[2]) > 0 and redis.call('EXISTS', LK[2]) == 1 then redis.call('INCRBYFLOAT', LK[2], LA[2]) end
  return 0
end
"""
_RELEASE = RELEASE_FUNCTION + "return limits_release(KEYS, ARGV)"


def release_keys(user_id: object) -> list[str]:
    """RELEASE_FUNCTION's keys for an answer ending now (its arguments: the answer id and `spend_of` it)."""
    answers, _, spend = _keys(user_id, _day_start(time.time()))
    return [answers, spend]
