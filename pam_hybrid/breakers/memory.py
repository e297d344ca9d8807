"""Breaker state kept in this process: what one server process without Redis uses."""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field

from pam_hybrid.breakers import rules
from pam_hybrid.breakers.config import BreakerConfig
from pam_hybrid.breakers.rules import Outcome
from pam_hybrid.breakers.values import BreakerStatus, Permit, State, Transition


@dataclass(slots=True)
class _Call:
    number: int
    started: float
    outcome: Outcome = "running"


@dataclass(slots=True)
class _Circuit:
    state: State = "closed"
    epoch: int = 0
    consecutive: int = 0
    opened_at: float | None = None
    retry_at: float | None = None
    seq: int = 0
    calls: list[_Call] = field(default_factory=list)
    """The calls on record, in start order (their numbers ascend)."""
    failed_starts: list[float] = field(default_factory=list)
    """When the failed calls on record started, sorted: the rate rule's count."""
    leases: dict[str, float] = field(default_factory=dict)
    forced_by: str = ""

    def enter(self, state: State, now: float, config: BreakerConfig, *, forced_by: str = "") -> None:
        """Move to `state`, clearing the counts; opened with `forced_by`, it has no retry time (no probes)."""
        self.state, self.epoch, self.consecutive = state, self.epoch + 1, 0
        self.forced_by = forced_by
        self.calls.clear()
        self.failed_starts.clear()
        self.leases.clear()
        if state == "open":
            self.opened_at, self.retry_at = now, None if forced_by else now + config.cooldown_s
        elif state == "closed":
            self.opened_at = self.retry_at = None

    def start(self, now: float, config: BreakerConfig) -> int:
        self.prune(now, config)
        self.seq += 1
        self.calls.append(_Call(self.seq, now))
        return self.seq

    def prune(self, now: float, config: BreakerConfig) -> None:
        drop = 0
        while drop < len(self.calls) and rules.prunable(
            config, self.calls[drop].started, self.calls[drop].outcome, len(self.calls) - drop, now
        ):
            drop += 1
        for call in self.calls[:drop]:
            if call.outcome == "failure":
                del self.failed_starts[bisect_left(self.failed_starts, call.started)]
        del self.calls[:drop]

    def index(self, token: str) -> int | None:
        if not token.isdigit():
            return None
        number = int(token)
        i = bisect_left(self.calls, number, key=lambda call: call.number)
        return i if i < len(self.calls) and self.calls[i].number == number else None

    def window(self, now: float, config: BreakerConfig) -> tuple[int, int]:
        """Calls started within the window (running ones included) and the failures among them."""
        since = now - config.window_s
        calls = len(self.calls) - bisect_right(self.calls, since, key=lambda call: call.started)
        return calls, len(self.failed_starts) - bisect_right(self.failed_starts, since)

    def run_of(self, i: int, cap: int) -> int:
        before = (self.calls[j].outcome for j in range(i - 1, -1, -1))
        after = (self.calls[j].outcome for j in range(i + 1, len(self.calls)))
        return rules.run_length(before, after, cap)


class MemoryBreakerStore:
    """Breaker state of this process. No method awaits inside; a lock makes each atomic even when a request served
    on another event loop or thread (a sync admin view outside a server) reaches the same store."""

    def __init__(self) -> None:
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()

    def _circuit(self, provider: str) -> _Circuit:
        circuit = self._circuits.get(provider)
        if circuit is None:
            circuit = self._circuits[provider] = _Circuit()
        return circuit

    def _current(self, permit: Permit) -> _Circuit | None:
        circuit = self._circuits.get(permit.provider)
        return circuit if circuit is not None and circuit.epoch == permit.epoch else None

    async def acquire(self, provider: str, config: BreakerConfig) -> Permit | None:
        with self._lock:
            circuit = self._circuit(provider)
            now = rules.now()
            if circuit.state == "closed":
                return Permit(provider, circuit.epoch, token=str(circuit.start(now, config)))
            transition = None
            if circuit.state == "open":
                if circuit.retry_at is None or now < circuit.retry_at:  # no retry time: forced open until reset
                    return None
                circuit.enter("half_open", now, config)
                transition = rules.transition(provider, "open", "half_open", rules.cooled_reason(config), now)
            circuit.leases = {token: expiry for token, expiry in circuit.leases.items() if expiry > now}
            if len(circuit.leases) >= config.probes:
                return None
            circuit.seq += 1
            token = str(circuit.seq)
            circuit.leases[token] = now + config.probe_lease_s
            return Permit(provider, circuit.epoch, probe=True, token=token, transition=transition)

    async def success(self, permit: Permit, config: BreakerConfig) -> Transition | None:
        with self._lock:
            circuit = self._current(permit)
            if circuit is None:
                return None
            now = rules.now()
            if circuit.state == "half_open":
                circuit.enter("closed", now, config)
                return rules.transition(permit.provider, "half_open", "closed", "probe succeeded", now)
            i = circuit.index(permit.token)
            if i is not None and circuit.calls[i].outcome == "running":
                circuit.calls[i].outcome = "success"
                circuit.consecutive = 0
            return None

    async def failure(self, permit: Permit, config: BreakerConfig, reason: str) -> Transition | None:
        with self._lock:
            circuit = self._current(permit)
            if circuit is None:
                return None
            now = rules.now()
            if circuit.state == "half_open":
                circuit.enter("open", now, config)
                return rules.transition(permit.provider, "half_open", "open", f"probe failed ({reason})", now)
            i = circuit.index(permit.token)
            if i is None or circuit.calls[i].outcome == "failure":
                return None
            call = circuit.calls[i]
            call.outcome = "failure"  # a success at the first token is overruled by a failure later in the stream
            insort(circuit.failed_starts, call.started)
            circuit.consecutive = circuit.run_of(i, config.consecutive_failures)
            counts = (circuit.consecutive, *circuit.window(now, config))
            if not rules.trips(config, *counts):
                return None
            circuit.enter("open", now, config)
            return rules.transition(
                permit.provider, "closed", "open", rules.opened_reason(config, *counts, reason), now
            )

    async def release(self, permit: Permit) -> None:
        with self._lock:
            circuit = self._current(permit)
            if circuit is None:
                return
            if permit.probe:
                circuit.leases.pop(permit.token, None)
                return
            i = circuit.index(permit.token)
            if i is not None and circuit.calls[i].outcome == "running":
                del circuit.calls[i]

    async def status(self, provider: str, config: BreakerConfig) -> BreakerStatus:
        with self._lock:
            circuit = self._circuits.get(provider) or _Circuit()
            now = rules.now()
            calls, failures = circuit.window(now, config)
            return BreakerStatus(
                provider, circuit.state, circuit.consecutive, calls, failures,
                sum(expiry > now for expiry in circuit.leases.values()), rules.at(circuit.opened_at),
                rules.at(circuit.retry_at), circuit.forced_by,
            )

    async def reset(self, provider: str, config: BreakerConfig, reason: str, actor: str) -> Transition | None:
        with self._lock:
            circuit = self._circuit(provider)
            before, now = circuit.state, rules.now()
            circuit.enter("closed", now, config)
            return None if before == "closed" else rules.transition(provider, before, "closed", reason, now, actor)

    async def force_open(self, provider: str, config: BreakerConfig, reason: str, actor: str) -> Transition | None:
        with self._lock:
            circuit = self._circuit(provider)
            if circuit.forced_by:
                return None
            before, now = circuit.state, rules.now()
            circuit.enter("open", now, config, forced_by=actor)
            return rules.transition(provider, before, "open", reason, now, actor)
