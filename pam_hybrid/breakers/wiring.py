"""The process's provider circuit breakers, configured from settings, and what staff do with them.

With REDIS_URL the state is shared by every server process through Redis; without it, it lives in this process
(one store per process, whichever event loop asks: the answers' loop and a staff page's request see the same
state). Every state change is saved as a BreakerEvent, with who forced it when staff did.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from channels.db import database_sync_to_async
from django.conf import settings

from pam_hybrid.breakers import (
    BreakerConfig,
    BreakerStatus,
    BreakerUnavailable,
    CircuitBreaker,
    MemoryBreakerStore,
    RedisBreakerStore,
    Transition,
)
from pam_hybrid.conf import pam_settings
from pam_hybrid.models import BreakerEvent
from pam_hybrid.redis_client import redis_client, redis_key

BreakerAction = Literal["reset", "open"]

_memory_stores: dict[tuple[BreakerConfig, str], MemoryBreakerStore] = {}
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


def breaker_state_shared() -> bool:
    """Whether breaker state is shared by every server process (through Redis) rather than kept in each one."""
    return bool(getattr(settings, "REDIS_URL", ""))


@database_sync_to_async
def _record(transition: Transition) -> None:
    BreakerEvent.objects.create(
        provider=transition.provider, from_state=transition.from_state, to_state=transition.to_state,
        reason=transition.reason[:300], actor=transition.actor[:150], at=transition.at,
    )


def _recorded(breaker: CircuitBreaker) -> CircuitBreaker:
    breaker.on_transition(_record)
    return breaker


def provider_breaker() -> CircuitBreaker:
    """This event loop's breaker for the current settings. A Redis client belongs to one loop, so the breaker is
    made per loop; the in-process state it wraps is one per process."""
    config = breaker_config()
    prefix = redis_key("breaker:")
    client = redis_client()
    key = (config, prefix, client is not None)
    per_loop = _breakers.setdefault(asyncio.get_running_loop(), {})
    breaker = per_loop.get(key)
    if breaker is None:
        if client is None:
            store: MemoryBreakerStore | RedisBreakerStore = _memory_stores.setdefault(
                (config, prefix), MemoryBreakerStore()
            )
        else:
            store = RedisBreakerStore(client, prefix=prefix)
        breaker = per_loop[key] = _recorded(CircuitBreaker(store, config))
    return breaker


@asynccontextmanager
async def shared_breaker() -> AsyncIterator[CircuitBreaker]:
    """The breaker every server process shares through Redis, on a client of its own that is closed at the end:
    for a command, which runs outside any server. Only with REDIS_URL (see breaker_state_shared)."""
    url: str = getattr(settings, "REDIS_URL", "")
    if not url:
        raise ValueError("breaker state is shared only with REDIS_URL")
    store = RedisBreakerStore.from_url(url, prefix=redis_key("breaker:"))
    try:
        yield _recorded(CircuitBreaker(store, breaker_config()))
    finally:
        await store.client.aclose()


@dataclass(frozen=True, slots=True)
class BreakerReading:
    """One provider's breaker as staff see it; `status` is None when the shared store could not be reached."""

    provider: str
    status: BreakerStatus | None


async def breaker_readings(breaker: CircuitBreaker, providers: Sequence[str]) -> list[BreakerReading]:
    readings = []
    for provider in providers:
        try:
            status: BreakerStatus | None = await breaker.status(provider)
        except BreakerUnavailable:
            status = None
        readings.append(BreakerReading(provider, status))
    return readings


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What a staff action did: the transition it caused (None when nothing changed state), and in words."""

    transition: Transition | None
    message: str


async def breaker_act(breaker: CircuitBreaker, *, action: BreakerAction, provider: str, actor: str, origin: str,
                      note: str = "") -> ActionOutcome:
    """Reset or force open a provider's breaker for `actor`, recorded with a reason naming `origin` (e.g. "from
    the admin page") and the staff member's `note`. Raises BreakerUnavailable when the shared store is down."""
    verb = "reset" if action == "reset" else "forced open"
    reason = f"{verb} {origin}" + (f": {note}" if note else "")
    name = f"The {provider} breaker"
    if action == "reset":
        transition = await breaker.reset(provider, reason=reason, actor=actor)
        if transition is None:
            return ActionOutcome(None, f"{name} was already closed: its failure counts were cleared.")
        return ActionOutcome(transition, f"{name} is reset to closed (it was {_words(transition.from_state)}).")
    transition = await breaker.force_open(provider, actor=actor, reason=reason)
    if transition is None:
        forced_by = (await breaker.status(provider)).forced_by
        return ActionOutcome(None, f"{name} was already forced open by {forced_by}: nothing changed.")
    was = _words(transition.from_state)
    return ActionOutcome(transition, f"{name} is forced open (it was {was}): no calls to {provider} until it is reset.")


def _words(state: str) -> str:
    return state.replace("_", "-")
