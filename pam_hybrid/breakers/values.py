"""What a breaker hands out: permits to call, state changes (transitions) and status snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state; `actor` says who forced it (a staff user, a command), empty when it was automatic."""

    provider: str
    from_state: State
    to_state: State
    reason: str
    at: datetime
    actor: str = ""


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to call a provider once (one message's call, its retries included); `token` names the call on record
    (its place in start order) or a probe's lease; `transition` is the change issuing it caused (open → half-open)."""

    provider: str
    epoch: int
    probe: bool = False
    token: str = ""
    transition: Transition | None = None


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """A snapshot of one provider's breaker. A forced-open breaker (`forced_by` set) has no `retry_at`: it stays
    open, without probes, until it is reset."""

    provider: str
    state: State
    consecutive_failures: int
    window_calls: int
    window_failures: int
    probes_in_flight: int
    opened_at: datetime | None
    retry_at: datetime | None
    forced_by: str = ""
