"""One model round made resilient: through the provider's circuit breaker, retried with jittered backoff (honouring
Retry-After) while nothing has been streamed, then on the fallback provider.

Every try leaves a `ModelCall` in the answer, whatever became of it (answered, retried, fallen back from, refused by
an open breaker, abandoned at a timeout or a stop), so what each provider call cost is recorded.

A failure after content was streamed is never papered over: it is raised, so the user sees the partial answer and
an error. Only provider ill health counts against a breaker: a user's cancel or our own rejected request does not.
The breaker hears one outcome per message and provider, however many tries it took (retries are the gateway's).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Callable

from pam_hybrid.breakers import BreakerUnavailable, CircuitBreaker, Permit
from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.answer import Answer
from pam_hybrid.domain.chunks import StreamChunk
from pam_hybrid.domain.exceptions import CircuitOpen, ProviderError, StreamInterrupted
from pam_hybrid.gateway.rounds import ModelRound, circuit_open_call
from pam_hybrid.gateway.routes import Target

logger = logging.getLogger(__name__)

_CONTENT = frozenset({"token", "tool_call"})


def backoff_s(attempt: int, base_ms: int, retry_after_s: float | None) -> float:
    """Full jitter on an exponential step; the provider's Retry-After wins when it sent one."""
    if retry_after_s is not None:
        return retry_after_s + random.uniform(0, base_ms / 1000 / 4)
    return random.uniform(0, base_ms / 1000 * 2**attempt)


class _BreakerCall:
    """One message's call to one provider as its breaker hears it: a success at the first token, a failure when
    every try failed (or the stream failed after its first token), else nothing (a user's stop, our own 400/401)."""

    def __init__(self, breaker: CircuitBreaker, permit: Permit) -> None:
        self.breaker = breaker
        self.permit = permit
        self.succeeded = False
        self.failure: ProviderError | None = None

    async def answered(self) -> None:
        self.succeeded = True
        await self.breaker.success(self.permit)

    def failed(self, error: ProviderError) -> None:
        self.failure = error

    async def settle(self) -> None:
        """Report what is left to report, once, when the gateway is done with this provider."""
        if self.failure is not None and self.failure.retryable:
            await self.breaker.failure(self.permit, reason=str(self.failure))
        elif not self.succeeded:
            await self.breaker.release(self.permit)


class ResilientRound:
    """Streams one round's chunks from the first target that answers; `model_round` is the call that answered
    (or failed after streaming content), for the answer's usage record."""

    def __init__(self, targets: list[Target], make_round: Callable[[Target], ModelRound], breaker: CircuitBreaker,
                 settings: PamSettings, round_number: int = 0) -> None:
        self.targets = targets
        self.round_number = round_number
        self.make_round = make_round
        self.breaker = breaker
        self.settings = settings
        self.model_round: ModelRound | None = None
        self.in_flight: ModelRound | None = None
        self.answered_by = targets[0]

    async def stream(self, answer: Answer, answer_started: float) -> AsyncGenerator[StreamChunk, None]:
        failure: ProviderError | None = None
        for index, target in enumerate(self.targets):
            if index > 0:
                assert failure is not None
                self._fall_back(answer, target, failure)
            # One permit per provider for the whole message: its retries are ours, and the breaker hears one outcome.
            permit = await self.breaker.acquire(target.provider.name)
            if permit is None:
                failure = await _circuit_open(self.breaker, target.provider.name)
                answer.calls.append(circuit_open_call(target.provider.name, target.model, failure, self.round_number))
                self._note_attempt(answer, target, failure, 0.0)
                continue
            self.answered_by = target
            call = _BreakerCall(self.breaker, permit)
            try:
                async for chunk in self._tries(target, call, answer, answer_started, fallback=index > 0):
                    yield chunk
                return
            except ProviderError as exc:
                if self.model_round is not None:
                    raise  # content was streamed: the user sees it, and the error
                failure = exc
            finally:
                await asyncio.shield(call.settle())
        assert failure is not None
        raise failure

    async def _tries(self, target: Target, call: _BreakerCall, answer: Answer, answer_started: float, *,
                     fallback: bool) -> AsyncGenerator[StreamChunk, None]:
        """The attempts on one provider: retried with backoff while nothing was streamed; raises the last failure."""
        deadline = answer_started + self.settings.retry_deadline_ms / 1000
        for attempt in range(self.settings.retries + 1):
            started = time.perf_counter()
            try:
                async for chunk in self._attempt(target, call, answer, answer_started, fallback=fallback):
                    yield chunk
                return
            except ProviderError as exc:
                if self.model_round is not None:
                    call.failed(exc)  # after the first token: the success it reported is overruled
                    raise
                self._note_attempt(answer, target, exc, (time.perf_counter() - started) * 1000)
                wait_s = backoff_s(attempt, self.settings.retry_backoff_ms, exc.retry_after_s)
                last_try = attempt == self.settings.retries or not exc.retryable
                if last_try or time.perf_counter() + wait_s > deadline:
                    call.failed(exc)
                    raise
            await asyncio.sleep(wait_s)

    async def _attempt(self, target: Target, call: _BreakerCall, answer: Answer, answer_started: float, *,
                       fallback: bool) -> AsyncGenerator[StreamChunk, None]:
        """One try; from its first content chunk on, it is the round's call (no retry, no fallback). Its usage
        record is added to the answer as it ends, however it ends."""
        model_round = self.in_flight = self.make_round(target)
        ended, error = "cancelled", ""
        try:
            async for chunk in model_round.stream(self.settings, answer, answer_started):
                first_content = self.model_round is None and chunk.chunk_type in _CONTENT
                if first_content:
                    self.model_round = model_round
                    if fallback:
                        chunk.metadata.update(provider=answer.provider, model=answer.model, fallback=answer.fallback)
                yield chunk
                if first_content:
                    # The provider is answering: that is its health. Reported now (after the token went out), so a
                    # half-open probe closes the breaker at its first token, not after a whole answer. The breaker
                    # places it by when the call started, so reporting it later than a fast failure changes nothing.
                    await call.answered()
            if model_round.finish is None:
                detail = f"{target.provider.name}: stream ended without a stop reason"
                raise StreamInterrupted(detail) if self.model_round is model_round else (
                    StreamInterrupted.before_any_text(detail)
                )
            ended = model_round.ended_by(None)
            self.model_round = model_round
        except ProviderError as exc:
            ended = "interrupted" if isinstance(exc, StreamInterrupted) else model_round.ended_by(exc)
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._record(answer, model_round, ended, error)

    def _record(self, answer: Answer, model_round: ModelRound, ended: str, error: str = "") -> None:
        if self.in_flight is model_round:
            self.in_flight = None
            answer.calls.append(model_round.record(ended, error))

    def abandon(self, answer: Answer) -> None:
        """Record the try still in flight as cancelled: for an answer closed from outside (its generator closed
        rather than its task cancelled), whose inner generators are not closed before it is saved."""
        if self.in_flight is not None:
            self._record(answer, self.in_flight, "cancelled")

    @staticmethod
    def _note_attempt(answer: Answer, target: Target, error: ProviderError, elapsed_ms: float) -> None:
        answer.attempts.append({
            "provider": target.provider.name, "model": target.model, "error": type(error).__name__,
            "detail": str(error), "ms": round(elapsed_ms, 1),
        })
        logger.warning("attempt on %s/%s failed: %s", target.provider.name, target.model, error)

    @staticmethod
    def _fall_back(answer: Answer, target: Target, failure: ProviderError) -> None:
        answer.fallback_from, answer.fallback_from_model = answer.provider, answer.model
        answer.fallback_reason = f"{answer.provider} {failure.reason_phrase}"
        answer.provider, answer.model = target.provider.name, target.model


async def _circuit_open(breaker: CircuitBreaker, provider: str) -> CircuitOpen:
    """The refusal of an open breaker, telling the user whether staff took the provider out or it tripped."""
    try:
        forced_by = (await breaker.status(provider)).forced_by
    except BreakerUnavailable:
        forced_by = ""
    detail = f"{provider}: circuit open"
    return CircuitOpen.forced(f"{detail} (forced by {forced_by})") if forced_by else CircuitOpen(detail)
