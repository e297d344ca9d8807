"""One model round made resilient: through the provider's circuit breaker, retried with jittered backoff (honouring
Retry-After) while nothing has been streamed, then on the fallback provider.

A failure after content was streamed is never papered over: it is raised, so the user sees the partial answer and
an error. Only provider ill health counts against a breaker: a user's cancel or our own rejected request does not.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Callable

from pam_hybrid.breakers import CircuitBreaker, Permit
from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.answer import Answer
from pam_hybrid.domain.chunks import StreamChunk
from pam_hybrid.domain.exceptions import CircuitOpen, ProviderError, StreamInterrupted
from pam_hybrid.gateway.rounds import ModelRound
from pam_hybrid.gateway.routes import Target

logger = logging.getLogger(__name__)

_CONTENT = frozenset({"token", "tool_call"})


def backoff_s(attempt: int, base_ms: int, retry_after_s: float | None) -> float:
    """Full jitter on an exponential step; the provider's Retry-After wins when it sent one."""
    if retry_after_s is not None:
        return retry_after_s + random.uniform(0, base_ms / 1000 / 4)
    return random.uniform(0, base_ms / 1000 * 2**attempt)


class ResilientRound:
    """Streams one round's chunks from the first target that answers; `model_round` is the call that answered
    (or failed after streaming content), for the answer's usage record."""

    def __init__(self, targets: list[Target], make_round: Callable[[Target], ModelRound], breaker: CircuitBreaker,
                 settings: PamSettings) -> None:
        self.targets = targets
        self.make_round = make_round
        self.breaker = breaker
        self.settings = settings
        self.model_round: ModelRound | None = None
        self.answered_by = targets[0]

    async def stream(self, answer: Answer, answer_started: float) -> AsyncGenerator[StreamChunk, None]:
        deadline = answer_started + self.settings.retry_deadline_ms / 1000
        failure: ProviderError | None = None
        for index, target in enumerate(self.targets):
            if index > 0:
                assert failure is not None
                self._fall_back(answer, target, failure)
            for attempt in range(self.settings.retries + 1):
                permit = await self.breaker.acquire(target.provider.name)
                if permit is None:
                    failure = CircuitOpen(f"{target.provider.name}: circuit open")
                    self._note_attempt(answer, target, failure, 0.0)
                    break
                started = time.perf_counter()
                self.answered_by = target
                try:
                    async for chunk in self._attempt(target, permit, answer, answer_started, fallback=index > 0):
                        yield chunk
                    return
                except ProviderError as exc:
                    if self.model_round is not None:
                        raise  # content was streamed: the user sees it, and the error
                    failure = exc
                    self._note_attempt(answer, target, exc, (time.perf_counter() - started) * 1000)
                wait_s = backoff_s(attempt, self.settings.retry_backoff_ms, failure.retry_after_s)
                last_try = attempt == self.settings.retries or not failure.retryable
                if last_try or time.perf_counter() + wait_s > deadline:
                    break
                await asyncio.sleep(wait_s)
        assert failure is not None
        raise failure

    async def _attempt(self, target: Target, permit: Permit, answer: Answer, answer_started: float, *,
                       fallback: bool) -> AsyncGenerator[StreamChunk, None]:
        """One call; from its first content chunk on, it is the round's call (no retry, no fallback)."""
        model_round = self.make_round(target)
        outcome, reason = "release", ""
        answered = False
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
                    # half-open probe closes the breaker at its first token, not after a whole answer.
                    answered = True
                    await self.breaker.success(permit)
            if model_round.finish is None:
                raise StreamInterrupted(f"{target.provider.name}: stream ended without a stop reason")
            self.model_round = model_round
            outcome = "success"
        except ProviderError as exc:
            if exc.retryable:
                outcome, reason = "failure", str(exc)
            raise
        finally:
            # A user's cancel, or our own rejected request, says nothing about the provider: released. A failure
            # after the first token still counts (a probe's, by then, is stale and ignored).
            if outcome == "failure" or not answered:
                await asyncio.shield(self._report(permit, outcome, reason))

    async def _report(self, permit: Permit, outcome: str, reason: str) -> None:
        if outcome == "success":
            await self.breaker.success(permit)
        elif outcome == "failure":
            await self.breaker.failure(permit, reason=reason)
        else:
            await self.breaker.release(permit)

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

