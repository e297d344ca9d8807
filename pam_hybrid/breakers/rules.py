"""The rules both stores share: when a breaker trips, the reasons it gives, and the clock the in-process one uses.

The model (README.md, "Circuit breakers"): every call to a provider gets a number when it starts, and the breaker
reads outcomes in that order, whenever they arrive. The consecutive-failure rule counts a run of failed calls that
started one after another: a call between them that succeeded, or that is still running, breaks the run (a run
it broke joins up again if that call fails too). So a fast failure cannot overtake slow successes started before
it. The rate rule counts the calls started in the window, those still running included, once there are enough.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from pam_hybrid.breakers.config import BreakerConfig
from pam_hybrid.breakers.values import State, Transition

Outcome = Literal["running", "success", "failure"]


def run_length(before: Iterable[Outcome], after: Iterable[Outcome], cap: int) -> int:
    """The run of failures a failed call is in: itself, the failures just before it (newest first) and just after
    it (oldest first), up to `cap`."""
    length = 1
    for side in (before, after):
        for outcome in side:
            if outcome != "failure" or length >= cap:
                break
            length += 1
    return min(length, cap)


def trips(config: BreakerConfig, consecutive: int, calls: int, failures: int) -> bool:
    rate_applies = calls >= config.min_calls
    return consecutive >= config.consecutive_failures or (rate_applies and failures >= config.failure_rate * calls)


def prunable(config: BreakerConfig, started: float, outcome: Outcome, tracked: int, now: float) -> bool:
    """Whether the oldest call on record may be forgotten: it left the window (a running one: its probe lease too,
    the answer's own timeout), and the latest `consecutive_failures` calls (the next one included) stay, however
    old, for the consecutive-failure rule."""
    lease_over = outcome != "running" or started <= now - config.probe_lease_s
    return tracked >= config.consecutive_failures and started <= now - config.window_s and lease_over


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
