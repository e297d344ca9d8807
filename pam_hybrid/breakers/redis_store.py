"""Breaker state in Redis, shared by every server process (the scripts are in `scripts`)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from pam_hybrid.breakers import rules, scripts
from pam_hybrid.breakers.config import BreakerConfig
from pam_hybrid.breakers.store import BreakerUnavailable
from pam_hybrid.breakers.values import BreakerStatus, Permit, Transition


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
        self._acquire = client.register_script(scripts.ACQUIRE)
        self._record = client.register_script(scripts.RECORD)
        self._release = client.register_script(scripts.RELEASE)
        self._status = client.register_script(scripts.STATUS)
        self._reset = client.register_script(scripts.RESET)
        self._force_open = client.register_script(scripts.FORCE_OPEN)

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
        return [base, f"{base}:calls", f"{base}:failures", f"{base}:probes", f"{base}:outcomes"]

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
        return self.permit_of(provider, config, await self._run(self._acquire, provider, *self.acquire_args(config)))

    def acquire_args(self, config: BreakerConfig) -> list[Any]:
        """ACQUIRE's arguments (its keys: `keys`), for a script that runs it as `scripts.ACQUIRE_FUNCTION`."""
        return [config.probes, config.probe_lease_s, self._ttl_ms(config), config.window_s,
                config.consecutive_failures]

    @staticmethod
    def permit_of(provider: str, config: BreakerConfig, reply: list[Any]) -> Permit | None:
        """The permit (or None: rejected) that ACQUIRE's reply stands for."""
        reply = [_text(value) for value in reply]
        if reply[0] == "closed":
            return Permit(provider, int(reply[1]), token=reply[2])
        if reply[0] == "rejected":
            return None
        _, epoch, token, moved, now = reply
        transition = (
            rules.transition(provider, "open", "half_open", rules.cooled_reason(config), float(now)) if moved else None
        )
        return Permit(provider, int(epoch), probe=True, token=token, transition=transition)

    async def _report(self, permit: Permit, config: BreakerConfig, failed: bool) -> list[Any]:
        return await self._run(self._record, permit.provider, *self.record_args(permit, config, failed))

    def record_args(self, permit: Permit, config: BreakerConfig, failed: bool) -> list[Any]:
        """RECORD's arguments (its keys: `keys`), for a script that runs it as `scripts.RECORD_FUNCTION`."""
        return [permit.epoch, int(failed), config.window_s, config.consecutive_failures, config.min_calls,
                config.failure_rate, config.cooldown_s, self._ttl_ms(config), permit.token]

    async def success(self, permit: Permit, config: BreakerConfig) -> Transition | None:
        reply = await self._report(permit, config, failed=False)
        if reply[0] != "moved":
            return None
        return rules.transition(permit.provider, "half_open", "closed", "probe succeeded", float(reply[1]))

    async def failure(self, permit: Permit, config: BreakerConfig, reason: str) -> Transition | None:
        reply = await self._report(permit, config, failed=True)
        if reply[0] != "moved":
            return None
        if len(reply) == 2:
            return rules.transition(permit.provider, "half_open", "open", f"probe failed ({reason})", float(reply[1]))
        text = rules.opened_reason(config, int(reply[2]), int(reply[3]), int(reply[4]), reason)
        return rules.transition(permit.provider, "closed", "open", text, float(reply[1]))

    async def release(self, permit: Permit) -> None:
        if permit.token:  # a permit issued while the store was unreachable has nothing to free
            await self._run(self._release, permit.provider, permit.epoch, permit.token, int(permit.probe))

    async def status(self, provider: str, config: BreakerConfig) -> BreakerStatus:
        state, consecutive, calls, failures, probes, opened_at, retry_at, forced_by = await self._run(
            self._status, provider, config.window_s
        )
        return BreakerStatus(
            provider, state, int(consecutive), int(calls), int(failures), int(probes),
            rules.at(_seconds(opened_at)), rules.at(_seconds(retry_at)), forced_by,
        )

    async def reset(self, provider: str, config: BreakerConfig, reason: str, actor: str) -> Transition | None:
        before, now = await self._run(self._reset, provider, self._ttl_ms(config))
        return None if before == "closed" else rules.transition(provider, before, "closed", reason, float(now), actor)

    async def force_open(self, provider: str, config: BreakerConfig, reason: str, actor: str) -> Transition | None:
        reply = await self._run(self._force_open, provider, actor, self._ttl_ms(config))
        if reply[0] == "unchanged":
            return None
        before, now = reply
        return rules.transition(provider, before, "open", reason, float(now), actor)
