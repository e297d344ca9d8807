"""What the gateway and staff call: a breaker store with one config, transition callbacks, and failing open."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from pam_hybrid.breakers.config import BreakerConfig
from pam_hybrid.breakers.store import BreakerStore, BreakerUnavailable
from pam_hybrid.breakers.values import BreakerStatus, Permit, Transition

logger = logging.getLogger(__name__)

TransitionCallback = Callable[[Transition], Awaitable[None]]


class CircuitBreaker:
    """What the gateway calls: a store with one config, transition callbacks, and failing open (calls go ahead,
    outcomes unrecorded) while the shared store is unreachable, so a Redis outage does not stop every answer."""

    def __init__(self, store: BreakerStore, config: BreakerConfig | None = None) -> None:
        self.store = store
        self.config = config or BreakerConfig()
        self._callbacks: list[TransitionCallback] = []

    def on_transition(self, callback: TransitionCallback) -> TransitionCallback:
        self._callbacks.append(callback)
        return callback

    async def acquire(self, provider: str) -> Permit | None:
        """A permit to call the provider, or None while its breaker is open or every probe slot is taken."""
        try:
            permit = await self.store.acquire(provider, self.config)
        except BreakerUnavailable:
            logger.warning("breaker store unreachable: letting a %s call through", provider, exc_info=True)
            return Permit(provider, epoch=-1)
        if permit is not None:
            await self._emit(permit.transition)
        return permit

    async def success(self, permit: Permit) -> Transition | None:
        return await self._outcome(permit, self.store.success(permit, self.config))

    async def failure(self, permit: Permit, *, reason: str) -> Transition | None:
        """Count a provider failure; `reason` (e.g. "HTTP 503") goes into the transition's reason."""
        return await self._outcome(permit, self.store.failure(permit, self.config, reason))

    async def release(self, permit: Permit) -> None:
        """Neither success nor failure (a user's cancel, our own 400/401): frees a probe slot, counts nothing."""
        await self._outcome(permit, self.store.release(permit))

    async def status(self, provider: str) -> BreakerStatus:
        """A read-only snapshot: an open breaker past its retry_at turns half-open at the next acquire.
        Raises BreakerUnavailable when the shared store cannot be reached."""
        return await self.store.status(provider, self.config)

    async def reset(self, provider: str, *, reason: str = "reset by an administrator",
                    actor: str = "") -> Transition | None:
        """Force closed (a forced-open breaker too) and clear the counts; outstanding permits become stale.
        None if it was already closed. Raises BreakerUnavailable when the shared store cannot be reached."""
        transition = await self.store.reset(provider, self.config, reason, actor)
        await self._emit(transition)
        return transition

    async def force_open(self, provider: str, *, actor: str,
                         reason: str = "forced open by an administrator") -> Transition | None:
        """Open and keep open, with no probes, until `reset`: a maintenance switch that `actor` (who, for the
        record and the status) pulled. None if it was already forced open. Raises BreakerUnavailable when the
        shared store cannot be reached."""
        if not actor:
            raise ValueError("a forced-open breaker must say who forced it")
        transition = await self.store.force_open(provider, self.config, reason, actor)
        await self._emit(transition)
        return transition

    async def _outcome(self, permit: Permit, report: Awaitable[Transition | None]) -> Transition | None:
        try:
            transition = await report
        except BreakerUnavailable:
            logger.warning("breaker store unreachable: a %s outcome was not recorded", permit.provider, exc_info=True)
            return None
        await self._emit(transition)
        return transition

    async def _emit(self, transition: Transition | None) -> None:
        if transition is None:
            return
        level = logging.WARNING if transition.to_state == "open" else logging.INFO
        logger.log(level, "breaker %s: %s -> %s (%s)%s", transition.provider, transition.from_state,
                   transition.to_state, transition.reason, f" by {transition.actor}" if transition.actor else "")
        for callback in self._callbacks:
            try:
                await callback(transition)
            except Exception:
                logger.exception("on_transition callback %r failed for %s", callback, transition)
