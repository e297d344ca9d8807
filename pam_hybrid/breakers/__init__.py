"""A circuit breaker per model provider (closed → open → half-open), kept in process or shared through Redis.

Hand-written: pybreaker, aiobreaker, purgatory, circuitbreaker and nopanic-redis each lack some of asyncio with
atomic shared Redis state, a sliding-window failure rate, expiring half-open probe leases and transition reasons.

A call (one message's use of a provider, its retries included) is numbered when it starts and its one outcome
is read in that order, so fast failures cannot overtake slow successes (the rules: `rules`; the model: README.md).
Every transition bumps the breaker's epoch and a permit carries the epoch it was issued in, so a late report from
an older permit changes nothing. A half-open probe slot is a lease that expires, so a hung probe cannot wedge it.
Staff may force a breaker open (a maintenance switch): it then stays open, with no probes, until it is reset.

Modules: `config`, `values` (permits, transitions, status), `rules` (when it trips and why), the stores (`store`
the protocol, `memory`, `redis_store` with its Lua `scripts`), `circuit` (the breaker the gateway calls),
`wiring` (this process's breaker per provider, its transitions recorded) and `selectors` (staff reads).
"""

from __future__ import annotations

from pam_hybrid.breakers.circuit import Ahead, CircuitBreaker, TransitionCallback
from pam_hybrid.breakers.config import BreakerConfig
from pam_hybrid.breakers.memory import MemoryBreakerStore
from pam_hybrid.breakers.redis_store import RedisBreakerStore
from pam_hybrid.breakers.store import BreakerStore, BreakerUnavailable
from pam_hybrid.breakers.values import BreakerStatus, Permit, State, Transition

__all__ = [
    "Ahead",
    "BreakerConfig",
    "BreakerStatus",
    "BreakerStore",
    "BreakerUnavailable",
    "CircuitBreaker",
    "MemoryBreakerStore",
    "Permit",
    "RedisBreakerStore",
    "State",
    "Transition",
    "TransitionCallback",
]
