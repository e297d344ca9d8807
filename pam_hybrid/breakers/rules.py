"""The rules both stores share: when a breaker trips, the reasons it gives, and the clock the in-process one uses."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pam_hybrid.breakers.config import BreakerConfig
from pam_hybrid.breakers.values import State, Transition


def trips(config: BreakerConfig, consecutive: int, calls: int, failures: int) -> bool:
    rate_applies = calls >= config.min_calls
    return consecutive >= config.consecutive_failures or (rate_applies and failures >= config.failure_rate * calls)


def opened_reason(config: BreakerConfig, consecutive: int, calls: int, failures: int, last: str) -> str:
    if consecutive >= config.consecutive_failures:
        return f"{consecutive} consecutive failure{'' if consecutive == 1 else 's'} (last: {last})"
    return f"failure rate {failures / calls:.0%} over the last {config.window_s:g} s ({failures} of {calls} calls)"


def cooled_reason(config: BreakerConfig) -> str:
    return f"cool-down of {config.cooldown_s:g} s elapsed"


def at(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def transition(provider: str, from_state: State, to_state: State, reason: str, now: float,
               actor: str = "") -> Transition:
    return Transition(provider, from_state, to_state, reason, datetime.fromtimestamp(now, UTC), actor)


_WALL_AT_MONOTONIC_ZERO = time.time() - time.monotonic()


def now() -> float:
    """Wall-clock seconds that never step backwards."""
    return _WALL_AT_MONOTONIC_ZERO + time.monotonic()
