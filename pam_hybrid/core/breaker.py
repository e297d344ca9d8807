"""A circuit breaker per model provider (closed → open → half-open), kept in process or shared through Redis.

Hand-written: pybreaker, aiobreaker, purgatory, circuitbreaker and nopanic-redis each lack some of asyncio with
atomic shared Redis state, a sliding-window failure rate, expiring half-open probe leases and transition reasons.

Every transition bumps the breaker's epoch and a permit carries the epoch it was issued in, so a late report from
an older permit changes nothing. A half-open probe slot is a lease that expires, so a hung probe cannot wedge it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from pam_hybrid.exceptions import PamError

logger = logging.getLogger(__name__)

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When a breaker opens and how it recovers; the same for every provider."""

    consecutive_failures: int = 5
    window_s: float = 60.0
    failure_rate: float = 0.5
    min_calls: int = 10
    cooldown_s: float = 30.0
    probes: int = 1
    probe_lease_s: float = 60.0

    def __post_init__(self) -> None:
        if min(self.consecutive_failures, self.min_calls, self.probes) < 1:
            raise ValueError("consecutive_failures, min_calls and probes must be at least 1")
        if not 0 < self.failure_rate <= 1:
            raise ValueError("failure_rate must be in (0, 1]")
        if min(self.window_s, self.cooldown_s, self.probe_lease_s) <= 0:
            raise ValueError("window_s, cooldown_s and probe_lease_s must be positive")


@dataclass(frozen=True, slots=True)
class Transition:
    provider: str
    from_state: State
    to_state: State
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to call a provider once; `transition` is the change that issuing it caused (open → half-open)."""

    provider: str
    epoch: int
    probe: bool = False
    token: str = ""
    transition: Transition | None = None


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    provider: str
    state: State
    consecutive_failures: int
    window_calls: int
    window_failures: int
    probes_in_flight: int
    opened_at: datetime | None
    retry_at: datetime | None


class BreakerUnavailable(PamError):
    """The shared breaker store could not be reached."""


class BreakerStore(Protocol):
    async def acquire(self, provider: str, config: BreakerConfig) -> Permit | None: ...
    async def success(self, permit: Permit, config: BreakerConfig) -> Transition | None: ...
    async def failure(self, permit: Permit, config: BreakerConfig, reason: str) -> Transition | None: ...
    async def release(self, permit: Permit) -> None: ...
    async def status(self, provider: str, config: BreakerConfig) -> BreakerStatus: ...
    async def reset(self, provider: str, config: BreakerConfig, reason: str) -> Transition | None: ...


def _trips(config: BreakerConfig, consecutive: int, calls: int, failures: int) -> bool:
    rate_applies = calls >= config.min_calls
    return consecutive >= config.consecutive_failures or (rate_applies and failures >= config.failure_rate * calls)


def _opened_reason(config: BreakerConfig, consecutive: int, calls: int, failures: int, last: str) -> str:
    if consecutive >= config.consecutive_failures:
        return f"{consecutive} consecutive failure{'' if consecutive == 1 else 's'} (last: {last})"
    return f"failure rate {failures / calls:.0%} over the last {config.window_s:g} s ({failures} of {calls} calls)"


def _cooled_reason(config: BreakerConfig) -> str:
    return f"cool-down of {config.cooldown_s:g} s elapsed"


def _at(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _transition(provider: str, from_state: State, to_state: State, reason: str, now: float) -> Transition:
    return Transition(provider, from_state, to_state, reason, datetime.fromtimestamp(now, UTC))


_WALL_AT_MONOTONIC_ZERO = time.time() - time.monotonic()


def _now() -> float:
    """Wall-clock seconds that never step backwards."""
    return _WALL_AT_MONOTONIC_ZERO + time.monotonic()


@dataclass(slots=True)
class _Circuit:
    state: State = "closed"
    epoch: int = 0
    consecutive: int = 0
    opened_at: float | None = None
    retry_at: float | None = None
    seq: int = 0
    calls: deque[tuple[float, bool]] = field(default_factory=deque)
    failures: int = 0
    leases: dict[str, float] = field(default_factory=dict)

    def enter(self, state: State, now: float, config: BreakerConfig) -> None:
        self.state, self.epoch, self.consecutive, self.failures = state, self.epoch + 1, 0, 0
        self.calls.clear()
        self.leases.clear()
        if state == "open":
            self.opened_at, self.retry_at = now, now + config.cooldown_s
        elif state == "closed":
            self.opened_at = self.retry_at = None

    def record(self, now: float, failed: bool, window_s: float) -> None:
        self.calls.append((now, failed))
        self.failures += failed
        while self.calls[0][0] <= now - window_s:
            self.failures -= self.calls.popleft()[1]


class MemoryBreakerStore:
    """Breaker state of this process. No method awaits inside, so each is atomic on its event loop."""

    def __init__(self) -> None:
        self._circuits: dict[str, _Circuit] = {}

    def _circuit(self, provider: str) -> _Circuit:
        circuit = self._circuits.get(provider)
        if circuit is None:
            circuit = self._circuits[provider] = _Circuit()
        return circuit

    def _current(self, permit: Permit) -> _Circuit | None:
        circuit = self._circuits.get(permit.provider)
        return circuit if circuit is not None and circuit.epoch == permit.epoch else None

    async def acquire(self, provider: str, config: BreakerConfig) -> Permit | None:
        circuit = self._circuit(provider)
        if circuit.state == "closed":
            return Permit(provider, circuit.epoch)
        now = _now()
        transition = None
        if circuit.state == "open":
            if now < (circuit.retry_at or 0):
                return None
            circuit.enter("half_open", now, config)
            transition = _transition(provider, "open", "half_open", _cooled_reason(config), now)
        circuit.leases = {token: expiry for token, expiry in circuit.leases.items() if expiry > now}
        if len(circuit.leases) >= config.probes:
            return None
        circuit.seq += 1
        token = str(circuit.seq)
        circuit.leases[token] = now + config.probe_lease_s
        return Permit(provider, circuit.epoch, probe=True, token=token, transition=transition)

    async def success(self, permit: Permit, config: BreakerConfig) -> Transition | None:
        circuit = self._current(permit)
        if circuit is None:
            return None
        now = _now()
        if circuit.state == "half_open":
            circuit.enter("closed", now, config)
            return _transition(permit.provider, "half_open", "closed", "probe succeeded", now)
        circuit.consecutive = 0
        circuit.record(now, False, config.window_s)
        return None

    async def failure(self, permit: Permit, config: BreakerConfig, reason: str) -> Transition | None:
        circuit = self._current(permit)
        if circuit is None:
            return None
        now = _now()
        if circuit.state == "half_open":
            circuit.enter("open", now, config)
            return _transition(permit.provider, "half_open", "open", f"probe failed ({reason})", now)
        circuit.consecutive += 1
        circuit.record(now, True, config.window_s)
        counts = (circuit.consecutive, len(circuit.calls), circuit.failures)
        if not _trips(config, *counts):
            return None
        circuit.enter("open", now, config)
        return _transition(permit.provider, "closed", "open", _opened_reason(config, *counts, reason), now)

    async def release(self, permit: Permit) -> None:
        circuit = self._current(permit)
        if circuit is not None:
            circuit.leases.pop(permit.token, None)

    async def status(self, provider: str, config: BreakerConfig) -> BreakerStatus:
        circuit = self._circuits.get(provider) or _Circuit()
        now = _now()
        window = [failed for at, failed in circuit.calls if at > now - config.window_s]
        return BreakerStatus(
            provider, circuit.state, circuit.consecutive, len(window), sum(window),
            sum(expiry > now for expiry in circuit.leases.values()), _at(circuit.opened_at), _at(circuit.retry_at),
        )

    async def reset(self, provider: str, config: BreakerConfig, reason: str) -> Transition | None:
        circuit = self._circuit(provider)
        before, now = circuit.state, _now()
        circuit.enter("closed", now, config)
        return None if before == "closed" else _transition(provider, before, "closed", reason, now)


# KEYS: state hash, calls zset, failures zset, probe-lease zset. Times are Redis's own (TIME), in seconds.
_LUA_PRELUDE = """
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function num(x) return string.format('%.6f', x) end
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
local function enter(to, now, cooldown, ttl_ms)
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
  redis.call('HSET', KEYS[1], 'state', to, 'epoch', epoch + 1, 'consecutive', 0)
  if to == 'open' then
    redis.call('HSET', KEYS[1], 'opened_at', num(now), 'retry_at', num(now + cooldown))
  elseif to == 'closed' then
    redis.call('HDEL', KEYS[1], 'opened_at', 'retry_at')
  end
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
end
"""

_LUA_ACQUIRE = _LUA_PRELUDE + """
if state == 'closed' then return {'closed', epoch} end
local now = clock()
local moved = 0
if state == 'open' then
  if now < tonumber(redis.call('HGET', KEYS[1], 'retry_at')) then return {'rejected'} end
  enter('half_open', now, 0, ARGV[3])
  epoch, moved = epoch + 1, 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', num(now))
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[1]) then return {'rejected'} end
local token = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[4], num(now + tonumber(ARGV[2])), token)
redis.call('PEXPIRE', KEYS[4], math.ceil(tonumber(ARGV[2]) * 1000))
return {'probe', epoch, tostring(token), moved, num(now)}
"""

_LUA_RECORD = _LUA_PRELUDE + """
if tonumber(ARGV[1]) ~= epoch or state == 'open' then return {'stale'} end
local now, failed, window, cooldown, ttl_ms = clock(), ARGV[2] == '1', tonumber(ARGV[3]), ARGV[7], ARGV[8]
if state == 'half_open' then
  enter(failed and 'open' or 'closed', now, cooldown, ttl_ms)
  return {'moved', num(now)}
end
local consecutive = 0
if failed then consecutive = redis.call('HINCRBY', KEYS[1], 'consecutive', 1)
else redis.call('HSET', KEYS[1], 'consecutive', 0) end
local id = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[2], num(now), id)
if failed then redis.call('ZADD', KEYS[3], num(now), id) end
for i = 2, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', num(now - window))
  redis.call('PEXPIRE', KEYS[i], math.ceil(window * 1000))
end
redis.call('PEXPIRE', KEYS[1], ttl_ms)
if not failed then return {'recorded'} end
local calls, failures = redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3])
local rate_applies = calls >= tonumber(ARGV[5])
if consecutive >= tonumber(ARGV[4]) or (rate_applies and failures >= tonumber(ARGV[6]) * calls) then
  enter('open', now, cooldown, ttl_ms)
  return {'moved', num(now), consecutive, calls, failures}
end
return {'recorded'}
"""

_LUA_RELEASE = _LUA_PRELUDE + """
if tonumber(ARGV[1]) == epoch then redis.call('ZREM', KEYS[4], ARGV[2]) end
return {'released'}
"""

_LUA_STATUS = _LUA_PRELUDE + """
local now = clock()
local since = '(' .. num(now - tonumber(ARGV[1]))
local h = redis.call('HMGET', KEYS[1], 'consecutive', 'opened_at', 'retry_at')
return {state, tonumber(h[1] or '0'), redis.call('ZCOUNT', KEYS[2], since, '+inf'),
        redis.call('ZCOUNT', KEYS[3], since, '+inf'), redis.call('ZCOUNT', KEYS[4], '(' .. num(now), '+inf'),
        h[2] or '', h[3] or ''}
"""

_LUA_RESET = _LUA_PRELUDE + """
local now = clock()
enter('closed', now, 0, ARGV[1])
return {state, num(now)}
"""


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _seconds(value: str) -> float | None:
    return float(value) if value else None


class RedisBreakerStore:
    """Breaker state in Redis, shared by every server process: each operation is one Lua script, one round trip,
    timed by Redis's clock so that processes with skewed clocks agree."""

    def __init__(self, client: Redis, *, prefix: str = "pam:breaker:", state_ttl_s: float = 86_400) -> None:
        self.client = client
        self._prefix = prefix
        self._state_ttl_s = state_ttl_s
        self._acquire = client.register_script(_LUA_ACQUIRE)
        self._record = client.register_script(_LUA_RECORD)
        self._release = client.register_script(_LUA_RELEASE)
        self._status = client.register_script(_LUA_STATUS)
        self._reset = client.register_script(_LUA_RESET)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "pam:breaker:", timeout_s: float = 0.5) -> RedisBreakerStore:
        """A store with a client of its own that gives up quickly (one immediate retry, short timeouts), so the
        gateway fails open at once when Redis is down; redis-py's default is 10 retries with back-off."""
        client = Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 1)
        )
        return cls(client, prefix=prefix)

    def keys(self, provider: str) -> list[str]:
        """The provider's keys; the {hash tag} keeps them in one Redis Cluster slot, as scripts require."""
        base = f"{self._prefix}{{{provider}}}"
        return [base, f"{base}:calls", f"{base}:failures", f"{base}:probes"]

    def _ttl_ms(self, config: BreakerConfig) -> int:
        longest_s = 2 * (config.window_s + config.cooldown_s + config.probe_lease_s)
        return int(max(self._state_ttl_s, longest_s) * 1000)

    async def _run(self, script: Any, provider: str, *args: Any) -> list[Any]:
        try:
            reply = await script(keys=self.keys(provider), args=list(args))
        except RedisError as exc:
            raise BreakerUnavailable(f"breaker store for {provider} unreachable") from exc
        return [_text(value) for value in reply]

    async def acquire(self, provider: str, config: BreakerConfig) -> Permit | None:
        reply = await self._run(self._acquire, provider, config.probes, config.probe_lease_s, self._ttl_ms(config))
        if reply[0] == "closed":
            return Permit(provider, int(reply[1]))
        if reply[0] == "rejected":
            return None
        _, epoch, token, moved, now = reply
        transition = _transition(provider, "open", "half_open", _cooled_reason(config), float(now)) if moved else None
        return Permit(provider, int(epoch), probe=True, token=token, transition=transition)

    async def _report(self, permit: Permit, config: BreakerConfig, failed: bool) -> list[Any]:
        return await self._run(
            self._record, permit.provider, permit.epoch, int(failed), config.window_s, config.consecutive_failures,
            config.min_calls, config.failure_rate, config.cooldown_s, self._ttl_ms(config),
        )

    async def success(self, permit: Permit, config: BreakerConfig) -> Transition | None:
        reply = await self._report(permit, config, failed=False)
        if reply[0] != "moved":
            return None
        return _transition(permit.provider, "half_open", "closed", "probe succeeded", float(reply[1]))

    async def failure(self, permit: Permit, config: BreakerConfig, reason: str) -> Transition | None:
        reply = await self._report(permit, config, failed=True)
        if reply[0] != "moved":
            return None
        if len(reply) == 2:
            return _transition(permit.provider, "half_open", "open", f"probe failed ({reason})", float(reply[1]))
        text = _opened_reason(config, int(reply[2]), int(reply[3]), int(reply[4]), reason)
        return _transition(permit.provider, "closed", "open", text, float(reply[1]))

    async def release(self, permit: Permit) -> None:
        if permit.probe:
            await self._run(self._release, permit.provider, permit.epoch, permit.token)

    async def status(self, provider: str, config: BreakerConfig) -> BreakerStatus:
        state, consecutive, calls, failures, probes, opened_at, retry_at = await self._run(
            self._status, provider, config.window_s
        )
        return BreakerStatus(
            provider, state, int(consecutive), int(calls), int(failures), int(probes),
            _at(_seconds(opened_at)), _at(_seconds(retry_at)),
        )

    async def reset(self, provider: str, config: BreakerConfig, reason: str) -> Transition | None:
        before, now = await self._run(self._reset, provider, self._ttl_ms(config))
        return None if before == "closed" else _transition(provider, before, "closed", reason, float(now))


TransitionCallback = Callable[[Transition], Awaitable[None]]


class CircuitBreaker:
    """What the gateway calls: a store with one config, transition callbacks, and failing open (calls go ahead,
    outcomes unrecorded) while the shared store is unreachable, so a Redis outage does not stop every answer."""

    def __init__(self, store: BreakerStore, config: BreakerConfig | None = None) -> None:
        self.store = store
        self.config = config or BreakerConfig()
        self._callbacks: list[TransitionCallback] = []

    def on_transition(self, callback: TransitionCallback) -> TransitionCallback:
        self._callbacks.append(callback)
        return callback

    async def acquire(self, provider: str) -> Permit | None:
        """A permit to call the provider, or None while its breaker is open or every probe slot is taken."""
        try:
            permit = await self.store.acquire(provider, self.config)
        except BreakerUnavailable:
            logger.warning("breaker store unreachable: letting a %s call through", provider, exc_info=True)
            return Permit(provider, epoch=-1)
        if permit is not None:
            await self._emit(permit.transition)
        return permit

    async def success(self, permit: Permit) -> Transition | None:
        return await self._outcome(permit, self.store.success(permit, self.config))

    async def failure(self, permit: Permit, *, reason: str) -> Transition | None:
        """Count a provider failure; `reason` (e.g. "HTTP 503") goes into the transition's reason."""
        return await self._outcome(permit, self.store.failure(permit, self.config, reason))

    async def release(self, permit: Permit) -> None:
        """Neither success nor failure (a user's cancel, our own 400/401): frees a probe slot, counts nothing."""
        await self._outcome(permit, self.store.release(permit))

    async def status(self, provider: str) -> BreakerStatus:
        """A read-only snapshot: an open breaker past its retry_at turns half-open at the next acquire."""
        return await self.store.status(provider, self.config)

    async def reset(self, provider: str, *, reason: str = "reset by an administrator") -> Transition | None:
        """Force closed and clear the counts; outstanding permits become stale. None if it was already closed."""
        transition = await self.store.reset(provider, self.config, reason)
        await self._emit(transition)
        return transition

    async def _outcome(self, permit: Permit, report: Awaitable[Transition | None]) -> Transition | None:
        try:
            transition = await report
        except BreakerUnavailable:
            logger.warning("breaker store unreachable: a %s outcome was not recorded", permit.provider, exc_info=True)
            return None
        await self._emit(transition)
        return transition

    async def _emit(self, transition: Transition | None) -> None:
        if transition is None:
            return
        level = logging.WARNING if transition.to_state == "open" else logging.INFO
        logger.log(level, "breaker %s: %s -> %s (%s)", transition.provider, transition.from_state,
                   transition.to_state, transition.reason)
        for callback in self._callbacks:
            try:
                await callback(transition)
            except Exception:
                logger.exception("on_transition callback %r failed for %s", callback, transition)
