"""The process's provider circuit breaker, configured from settings: shared by every server process through Redis
when REDIS_URL is set, in process otherwise. Every state change is saved as a BreakerEvent for the admin."""

from __future__ import annotations

import asyncio
import weakref

from channels.db import database_sync_to_async

from pam_hybrid.conf import pam_settings
from pam_hybrid.core.breaker import BreakerConfig, CircuitBreaker, MemoryBreakerStore, RedisBreakerStore, Transition
from pam_hybrid.models import BreakerEvent
from pam_hybrid.redis_client import redis_client, redis_key

_breakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[object, ...], CircuitBreaker]] = (
    weakref.WeakKeyDictionary()
)


def breaker_config() -> BreakerConfig:
    s = pam_settings()
    return BreakerConfig(
        consecutive_failures=s.breaker_failures,
        window_s=s.breaker_window_ms / 1000,
        failure_rate=s.breaker_failure_rate,
        min_calls=s.breaker_min_calls,
        cooldown_s=s.breaker_cooldown_ms / 1000,
        probes=s.breaker_probes,
        # A probe is bounded by the answer's own timeouts; its slot is freed at the latest when the answer must end.
        probe_lease_s=s.total_timeout_ms / 1000,
    )


@database_sync_to_async
def _record(transition: Transition) -> None:
    BreakerEvent.objects.create(
        provider=transition.provider, from_state=transition.from_state, to_state=transition.to_state,
        reason=transition.reason[:300], at=transition.at,
    )


def provider_breaker() -> CircuitBreaker:
    """This event loop's breaker for the current settings (one per process in a server)."""
    config = breaker_config()
    prefix = redis_key("breaker:")
    client = redis_client()
    key = (config, prefix, client is not None)
    per_loop = _breakers.setdefault(asyncio.get_running_loop(), {})
    breaker = per_loop.get(key)
    if breaker is None:
        store = MemoryBreakerStore() if client is None else RedisBreakerStore(client, prefix=prefix)
        breaker = per_loop[key] = CircuitBreaker(store, config)
        breaker.on_transition(_record)
    return breaker
