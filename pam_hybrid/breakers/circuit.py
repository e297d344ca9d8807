"""What the gateway and staff call: a breaker store with one config, transition callbacks, and failing open."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass

from pam_hybrid.breakers.config import BreakerConfig
from pam_hybrid.breakers.store import BreakerStore, BreakerUnavailable
from pam_hybrid.breakers.values import BreakerStatus, Permit, Transition

logger = logging.getLogger(__name__)

TransitionCallback = Callable[[Transition], Awaitable[None]]


@dataclass(slots=True)
class Ahead:
    """A provider's breaker asked ahead of the call, in the same Redis round trip as the message's admission
    (pam_hybrid.runtime.preflight): the context's first `acquire` takes `permit` if it is for `provider`, instead of
    asking the store again. Whoever asked ahead releases a permit that was not `used`, and reports the `succeeded`
    of one that was (with the answer's other writes as it ends): a call's success counts from when it started, and
    until then the call is running, which breaks a run of failures just as a success does. A probe's success is
    reported at once (it closes the breaker), as is every failure."""

    provider: str
    permit: Permit | None
    asked: bool = False
    used: bool = False
    succeeded: bool = False


_ahead: ContextVar[Ahead | None] = ContextVar("pam_breaker_ahead", default=None)


class CircuitBreaker:
    """What the gateway calls: a store with one config, transition callbacks, and failing open (calls go ahead,
    outcomes unrecorded) while the shared store is unreachable, so a Redis outage does not stop every answer."""

    def __init__(self, store: BreakerStore, config: BreakerConfig | None = None) -> None:
        self.store = store
        self.config = config or BreakerConfig()
        self._callbacks: list[TransitionCallback] = []
        self._releasing: set[asyncio.Future[None]] = set()

    def on_transition(self, callback: TransitionCallback) -> TransitionCallback:
        self._callbacks.append(callback)
        return callback

    async def hold_ahead(self, ahead: Ahead | None) -> None:
        """Hold `ahead` (None: nothing) for the next `acquire` in this context and the tasks it starts; the
        transition that asking ahead caused, if any, is emitted now."""
        if ahead is not None and ahead.permit is not None:
            await self._emit(ahead.permit.transition)
        _ahead.set(ahead)

    async def acquire(self, provider: str) -> Permit | None:
        """A permit to call the provider, or None while its breaker is open or every probe slot is taken."""
        ahead = _ahead.get()
        if ahead is not None and not ahead.asked:
            ahead.asked = True
            if ahead.provider == provider:
                ahead.used = True
                return ahead.permit
            if ahead.permit is not None:  # asked ahead of the wrong provider: its permit goes back meanwhile
                releasing = asyncio.ensure_future(self.release(ahead.permit))
                self._releasing.add(releasing)
                releasing.add_done_callback(self._releasing.discard)
        try:
            permit = await self.store.acquire(provider, self.config)
        except BreakerUnavailable as exc:
            logger.warning("breaker store unreachable: letting a %s call through (%r)", provider, exc.__cause__)
            return Permit(provider, epoch=-1)
        if permit is not None:
            await self._emit(permit.transition)
        return permit

    async def success(self, permit: Permit) -> Transition | None:
        ahead = _ahead.get()
        if ahead is not None and ahead.permit is permit and not permit.probe:
            ahead.succeeded = True  # reported by whoever asked ahead, as the answer ends
            return None
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
        except BreakerUnavailable as exc:
            logger.warning(
                "breaker store unreachable: a %s outcome was not recorded (%r)", permit.provider, exc.__cause__
            )
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
