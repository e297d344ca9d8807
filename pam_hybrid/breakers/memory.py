"""Breaker state kept in this process: what one server process without Redis uses."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from pam_hybrid.breakers import rules
from pam_hybrid.breakers.config import BreakerConfig
from pam_hybrid.breakers.values import BreakerStatus, Permit, State, Transition


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
    forced_by: str = ""

    def enter(self, state: State, now: float, config: BreakerConfig, *, forced_by: str = "") -> None:
        """Move to `state`, clearing the counts; opened with `forced_by`, it has no retry time (no probes)."""
        self.state, self.epoch, self.consecutive, self.failures = state, self.epoch + 1, 0, 0
        self.forced_by = forced_by
        self.calls.clear()
        self.leases.clear()
        if state == "open":
            self.opened_at, self.retry_at = now, None if forced_by else now + config.cooldown_s
        elif state == "closed":
            self.opened_at = self.retry_at = None

    def record(self, now: float, failed: bool, window_s: float) -> None:
        self.calls.append((now, failed))
        self.failures += failed
        while self.calls[0][0] <= now - window_s:
            self.failures -= self.calls.popleft()[1]


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
            if circuit.state == "closed":
                return Permit(provider, circuit.epoch)
            now = rules.now()
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
            circuit.consecutive = 0
            circuit.record(now, False, config.window_s)
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
            circuit.consecutive += 1
            circuit.record(now, True, config.window_s)
            counts = (circuit.consecutive, len(circuit.calls), circuit.failures)
            if not rules.trips(config, *counts):
                return None
            circuit.enter("open", now, config)
            return rules.transition(
                permit.provider, "closed", "open", rules.opened_reason(config, *counts, reason), now
            )

    async def release(self, permit: Permit) -> None:
        with self._lock:
            circuit = self._current(permit)
            if circuit is not None:
                circuit.leases.pop(permit.token, None)

    async def status(self, provider: str, config: BreakerConfig) -> BreakerStatus:
        with self._lock:
            circuit = self._circuits.get(provider) or _Circuit()
            now = rules.now()
            window = [failed for at, failed in circuit.calls if at > now - config.window_s]
            return BreakerStatus(
                provider, circuit.state, circuit.consecutive, len(window), sum(window),
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
