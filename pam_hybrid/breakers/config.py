"""When a breaker opens and how it recovers: one config for every provider."""

from __future__ import annotations

from dataclasses import dataclass


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
