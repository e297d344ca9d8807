"""The streaming gateway: classify a query, route it to a provider, stream its answer as StreamChunks, and
save the answer with its usage, whatever happens to the stream.

No token waits on a database write: ids are generated up front, the user's message is saved by a
concurrent task once the provider has accepted the request (while the model works on its first token),
and the answer is saved once, at the end, in a shielded write that survives cancellation.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Literal

from channels.db import database_sync_to_async
from django.contrib.auth.base_user import AbstractBaseUser

from pam_hybrid import services
from pam_hybrid.conf import PamSettings, pam_settings
from pam_hybrid.core.answer import Answer
from pam_hybrid.core.chunks import Accepted, ChatTurn, Finish, ProviderEvent, StreamChunk, TextDelta, Usage
from pam_hybrid.core.classifier import classify
from pam_hybrid.core.context import estimate_tokens, fit_to_budget
from pam_hybrid.core.pricing import cost_usd
from pam_hybrid.core.routes import Target, resolve_route
from pam_hybrid.exceptions import PamError, ProviderError, ProviderTimedOut, StreamInterrupted
from pam_hybrid.providers.base import ModelRequest
from pam_hybrid.providers.registry import warm_providers

logger = logging.getLogger(__name__)

RouteChoice = Literal["auto", "simple", "complex"]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    user: AbstractBaseUser
    content: str
    conversation_id: str | None = None
    route: RouteChoice = "auto"
    client_msg_id: str = ""


_START_KEYS = frozenset({"conversation_id", "message_id", "route", "provider", "model", "classification_ms"})


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


async def _with_deadlines(
    events: AsyncGenerator[ProviderEvent, None], settings: PamSettings, started: float
) -> AsyncGenerator[ProviderEvent, None]:
    """Pass events through, enforcing the first-token, between-tokens and whole-answer timeouts."""
    deadline = started + settings.total_timeout_ms / 1000
    seen_text = False
    try:
        while True:
            limit_ms = settings.idle_timeout_ms if seen_text else settings.first_token_timeout_ms
            remaining = deadline - time.perf_counter()
            try:
                async with asyncio.timeout(min(limit_ms / 1000, max(remaining, 0))):
                    event = await anext(events)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                if remaining <= limit_ms / 1000:
                    raise ProviderTimedOut("whole-answer timeout",
                                           user_message="The answer took too long and was stopped.") from exc
                what = "between tokens" if seen_text else "before the first token"
                raise ProviderTimedOut(f"timed out {what}") from exc
            seen_text = seen_text or isinstance(event, TextDelta)
            yield event
    finally:
        await events.aclose()


def _final_usage(answer: Answer, turns: tuple[ChatTurn, ...]) -> Usage:
    if answer.usage is not None:
        return answer.usage
    return Usage(
        input_tokens=sum(estimate_tokens(turn.content) for turn in turns),
        output_tokens=estimate_tokens(answer.text),
        estimated=True,
    )


def answer_metadata(answer: Answer) -> dict[str, Any]:
    usage = answer.usage or Usage()
    return {
        "conversation_id": str(answer.conversation_id),
        "message_id": str(answer.message_id),
        "route": answer.route,
        "provider": answer.provider,
        "model": answer.model,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "usage_estimated": usage.estimated,
        "cost_usd": None if answer.cost_usd is None else str(answer.cost_usd),
        "classification_ms": answer.classification_ms,
        "ttft_ms": answer.ttft_ms,
        "total_ms": answer.total_ms,
        "finish_reason": answer.finish_reason,
        "status": answer.status,
    }


async def _save(user: AbstractBaseUser, user_saved: asyncio.Future[None], answer: Answer) -> None:
    try:
        await user_saved
        await database_sync_to_async(services.answer_save)(user=user, answer=answer)
    except Exception:
        logger.exception("could not save answer %s", answer.message_id)


class ConversationNotFound(Exception):
    """The request names a conversation the user does not have."""


class AnswerStream:
    """One answer: iterate `chunks()` for what to send; `answer` keeps its final state even after cancellation."""

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.settings = pam_settings()
        self.started = time.perf_counter()
        self.classification_ms = 0.0
        self.answer: Answer | None = None
        self._user_saved: asyncio.Future[None] | None = None

    async def chunks(self) -> AsyncGenerator[StreamChunk, None]:
        """A `start` chunk, `token` chunks, then `end` (or `error`); the answer is saved whatever happens."""
        try:
            target, turns = await self._prepare()
        except ConversationNotFound:
            yield StreamChunk("error", "That conversation was not found.", {"code": "conversation_not_found"})
            return
        answer = self.answer = self._new_answer(target)
        try:
            yield StreamChunk("start", metadata={
                key: value for key, value in answer_metadata(answer).items() if key in _START_KEYS
            })
            model_request = ModelRequest(model=target.model, turns=turns,
                                         max_output_tokens=self.settings.max_output_tokens)
            events = target.provider.stream(model_request, self.settings)
            async for event in _with_deadlines(events, self.settings, self.started):
                if isinstance(event, Accepted):
                    # Save the user's message while the model thinks: the write competes with nothing then.
                    self._start_user_message_save(answer)
                elif isinstance(event, TextDelta):
                    answer.add_text(event.text, _ms_since(self.started))
                    yield StreamChunk("token", event.text)
                elif isinstance(event, Usage):
                    answer.usage = event
                elif isinstance(event, Finish):
                    answer.finish = event
            if answer.finish is None:
                raise StreamInterrupted("stream ended without a stop reason")
            answer.outcome = "complete" if answer.finish.complete else "partial"
        except ProviderError as exc:
            answer.outcome = "error"
            answer.error = exc.user_message
            logger.warning("answer %s failed: %s", answer.message_id, exc)
        except Exception:
            # The one catch-all, at the boundary: a bug must still end the user's message with an answer row.
            answer.outcome = "error"
            answer.error = PamError.user_message
            logger.exception("answer %s failed unexpectedly", answer.message_id)
        except (asyncio.CancelledError, GeneratorExit):
            answer.outcome = "cancelled"
            raise
        finally:
            await self._finish(answer, turns)
        metadata = answer_metadata(answer)
        if answer.outcome == "error":
            yield StreamChunk("error", answer.error, {**metadata, "code": "provider_error"})
        else:
            yield StreamChunk("end", "", metadata)

    async def _prepare(self) -> tuple[Target, tuple[ChatTurn, ...]]:
        """Route the query and gather its context (the only database access before the first token: a read)."""
        request = self.request
        history: list[ChatTurn] = []
        if request.conversation_id:
            found = await database_sync_to_async(services.conversation_history)(
                user=request.user, conversation_id=request.conversation_id
            )
            if found is None:
                raise ConversationNotFound(request.conversation_id)
            history = found
        classify_started = time.perf_counter()
        classification = classify(request.content)
        self.classification_ms = _ms_since(classify_started)
        route = classification.route if request.route == "auto" else request.route
        turns = fit_to_budget(history, ChatTurn("user", request.content), self.settings.context_token_budget)
        return resolve_route(route, self.settings), turns

    def _new_answer(self, target: Target) -> Answer:
        request = self.request
        return Answer(
            conversation_id=uuid.UUID(request.conversation_id) if request.conversation_id else uuid.uuid4(),
            user_message_id=uuid.uuid4(),
            route=target.route,
            provider=target.provider.name,
            model=target.model,
            client_msg_id=request.client_msg_id,
            classification_ms=self.classification_ms,
        )

    def _start_user_message_save(self, answer: Answer) -> asyncio.Future[None]:
        if self._user_saved is None:
            self._user_saved = asyncio.ensure_future(database_sync_to_async(services.user_message_create)(
                user=self.request.user,
                conversation_id=answer.conversation_id,
                message_id=answer.user_message_id,
                content=self.request.content,
                client_msg_id=self.request.client_msg_id,
            ))
        return self._user_saved

    async def _finish(self, answer: Answer, turns: tuple[ChatTurn, ...]) -> None:
        """Settle usage and cost, then save: shielded, so a second cancellation cannot lose the answer."""
        answer.total_ms = _ms_since(self.started)
        answer.usage = _final_usage(answer, turns)
        answer.cost_usd = cost_usd(answer.model, answer.usage)
        user_saved = self._start_user_message_save(answer)
        await asyncio.shield(asyncio.ensure_future(_save(self.request.user, user_saved, answer)))
        logger.info(
            "answer message=%s user=%s route=%s provider=%s model=%s in=%d out=%d cost=%s ttft_ms=%s total_ms=%s "
            "outcome=%s", answer.message_id, self.request.user.pk, answer.route, answer.provider, answer.model,
            answer.usage.input_tokens, answer.usage.output_tokens, answer.cost_usd, answer.ttft_ms,
            answer.total_ms, answer.outcome,
        )


async def prepare_providers() -> None:
    """Build the configured providers' SDK clients ahead of the first answer."""
    await warm_providers(pam_settings())


def process_request_stream(request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
    """Answer one user message as a stream of chunks (see AnswerStream)."""
    return AnswerStream(request).chunks()
