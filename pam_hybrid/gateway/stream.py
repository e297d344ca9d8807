"""The streaming gateway: classify a query, route it to a provider, stream its answer as StreamChunks
(running the tools the model calls, round after round), and save the answer with its usage, whatever
happens to the stream.

No token waits on a database write: ids are generated up front, the user's message is saved by a
concurrent task once the provider has accepted the request (while the model works on its first token),
and the answer is saved once, at the end, in a shielded write that survives cancellation.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.base_user import AbstractBaseUser

from pam_hybrid.breakers.wiring import provider_breaker
from pam_hybrid.conf import pam_settings
from pam_hybrid.conversations import services
from pam_hybrid.conversations.batched_writes import answer_writes, exchange_writes
from pam_hybrid.domain.answer import Answer
from pam_hybrid.domain.chunks import ChatTurn, StreamChunk
from pam_hybrid.domain.context import fit_to_budget
from pam_hybrid.domain.exceptions import MessageNotFound, PamError, ProviderError, StreamInterrupted
from pam_hybrid.domain.routes import Classification, RouteChoice
from pam_hybrid.gateway.attempts import ResilientRound
from pam_hybrid.gateway.rounds import LENGTH_REASONS, ModelRound
from pam_hybrid.gateway.routes import Target, fallback_target, resolve_route
from pam_hybrid.observability.answer_log import answer_log
from pam_hybrid.observability.metrics import answer_observe
from pam_hybrid.providers.base import ModelRequest, ToolSpec
from pam_hybrid.providers.registry import warm_providers
from pam_hybrid.routing import classify, history_texts
from pam_hybrid.tools.base import Tool, ToolContext
from pam_hybrid.tools.registry import all_tools

logger = logging.getLogger(__name__)

_START_KEYS = frozenset({"conversation_id", "message_id", "route", "provider", "model", "classification_ms"})
LENGTH_NOTE = "The answer was cut short by the length limit."


@dataclass(frozen=True, slots=True)
class ChatRequest:
    user: AbstractBaseUser
    content: str
    conversation_id: str | None = None
    route: RouteChoice = "auto"
    provider: str = ""
    """Forces the provider (replay_conversation's --provider); empty: the route's. See `resolve_route`."""
    model: str = ""
    """Forces the model (replay_conversation's --model); empty: the provider's for the route."""
    client_msg_id: str = ""
    message_id: uuid.UUID = field(default_factory=uuid.uuid4)
    """The answer's id, known before anything is saved."""
    edit_of: uuid.UUID | None = None
    """The user message this one is a new version of: it follows that one's parent, not the branch's end."""
    regenerate_of: uuid.UUID | None = None
    """The answer this one is a new version of: no new user message (`content` and `conversation_id` are read from
    the saved one)."""
    prefer_simple: bool = False
    """The user is near today's spend cap (runtime.limits.near_cap): `auto` takes the simple route."""


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def answer_metadata(answer: Answer) -> dict[str, Any]:
    usage = answer.usage
    metadata: dict[str, Any] = {
        "conversation_id": str(answer.conversation_id),
        "message_id": str(answer.message_id),
        "route": answer.route,
        "provider": answer.provider,
        "model": answer.model,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "usage_estimated": usage.estimated,
        "model_calls": len(answer.calls),
        "cost_usd": None if answer.cost_usd is None else f"{answer.cost_usd:f}",  # never "0E-8"
        "estimated_cost_usd": f"{answer.estimated_cost_usd:f}",
        "unknown_cost_calls": answer.unknown_cost_calls,
        "classification_ms": answer.classification_ms,
        "ttft_ms": answer.ttft_ms,
        "total_ms": answer.total_ms,
        "finish_reason": answer.finish_reason,
        "status": answer.status,
    }
    if answer.fallback is not None:
        metadata["fallback"] = answer.fallback
    if answer.attempts:
        metadata["failed_attempts"] = len(answer.attempts)
    if answer.finish_reason in LENGTH_REASONS:
        metadata["note"] = LENGTH_NOTE
    return metadata


def _decision(classification: Classification) -> dict[str, Any]:
    """The router's decision as the usage record keeps it (JSON)."""
    return {
        "route": classification.route, "score": round(classification.score, 4),
        "threshold": classification.threshold, "model_version": classification.model_version,
        "features": dict(classification.features),
    }


def _tool_specs() -> tuple[ToolSpec, ...]:
    return _specs_for(tuple(all_tools()))


@functools.lru_cache(maxsize=8)
def _specs_for(tools: tuple[Tool[Any], ...]) -> tuple[ToolSpec, ...]:
    # Generating the JSON Schemas costs about 1 ms; done once per set of registered tools, not per request.
    return tuple(ToolSpec(t.name, t.description, t.json_schema()) for t in tools)


async def _save(user: AbstractBaseUser, user_saved: asyncio.Future[None] | None, answer: Answer,
                content: str) -> None:
    """Save the answer, then log its one line and count it in the metrics; a task of its own, so cancelling the
    answer cannot cut it short.
    Without `user_saved` (no provider ever accepted the request) the whole exchange is saved in one transaction."""
    saved = False
    try:
        if user_saved is None:
            await database_sync_to_async(services.exchange_save)(user=user, answer=answer, content=content)
        else:
            await user_saved
            await answer_writes().submit(services.AnswerSave(user, answer))
        saved = True
    except Exception:
        logger.exception("could not save answer %s", answer.message_id)
    answer_log(answer, user_id=user.pk, saved=saved)
    answer_observe(answer)


class ConversationNotFound(Exception):
    """The request names a conversation the user does not have."""


class AnswerStream:
    """One answer: iterate `chunks()` for what to send; `answer` keeps its final state even after cancellation."""

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.settings = pam_settings()
        self.started = time.perf_counter()
        self.classification_ms = 0.0
        self.routing: dict[str, Any] = {}
        """The router's decision for the message, made for a forced route too (kept with the answer's usage)."""
        self.asked: tuple[str, ...] = ()
        """What the router read: the earlier turns, then the message (kept with routing signals)."""
        self.route_reason = "classifier"
        """Why the route: "classifier" (auto), "user" (a route asked for) or "budget" (auto, near the spend cap)."""
        self.message_id = request.message_id
        self.content = request.content
        """The user's message: the request's, or for a regenerate the saved one it answers again."""
        self.place: services.Place | None = None
        self.answer: Answer | None = None
        self.final: StreamChunk | None = None
        """The last chunk (`end` or `error`), set once the answer is saved; also after a cancellation."""
        self.saved: asyncio.Future[None] | None = None
        self._user_saved: asyncio.Future[None] | None = None
        self._resilient: ResilientRound | None = None
        self._chars = 0
        self.cancel_reason = "cancelled"
        """The finish reason if the answer is cancelled: a user's stop, or "disconnected" when nobody resumed it."""

    async def chunks(self) -> AsyncGenerator[StreamChunk, None]:
        """A `start` chunk, `token`/`tool_call`/`tool_result` chunks, then `end` (or `error`), each numbered by
        `metadata.seq`; the answer is saved whatever happens, before its last chunk is yielded."""
        try:
            target, turns = await self._prepare()
        except ConversationNotFound:
            yield StreamChunk("error", "That conversation was not found.", {"code": "conversation_not_found"})
            return
        except MessageNotFound as exc:
            yield StreamChunk("error", exc.user_message, {"code": "not_found"})
            return
        answer = self.answer = self._new_answer(target)
        try:
            yield self._numbered(StreamChunk("start", metadata=self._start_metadata(answer)))
            async for chunk in self._rounds(target, turns, answer):
                yield self._numbered(chunk)
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
            answer.cancel_reason = self.cancel_reason
            raise
        finally:
            await self._finish(answer)
        assert self.final is not None
        yield self.final

    def _start_metadata(self, answer: Answer) -> dict[str, Any]:
        metadata = {key: value for key, value in answer_metadata(answer).items() if key in _START_KEYS}
        metadata["user_message_id"] = metadata["parent_id"] = str(answer.user_message_id)
        metadata["route_reason"] = self.route_reason
        if self.request.edit_of is not None:
            metadata["edit_of"] = str(self.request.edit_of)
        if self.request.regenerate_of is not None:
            metadata["regenerate_of"] = str(self.request.regenerate_of)
        return metadata

    def _numbered(self, chunk: StreamChunk) -> StreamChunk:
        """Give the chunk the answer's next sequence number and log it for resuming."""
        assert self.answer is not None
        log = self.answer.stream_log
        chunk.metadata["seq"] = len(log)
        if chunk.chunk_type == "token":
            self._chars += len(chunk.content)
            log.append(self._chars)
        else:
            log.append(chunk.to_frame())
        return chunk

    async def _rounds(
        self, target: Target, turns: tuple[ChatTurn, ...], answer: Answer
    ) -> AsyncGenerator[StreamChunk, None]:
        """Model calls until one answers without asking for tools (or the round limit forbids more)."""
        tools = _tool_specs() if self.settings.tools_enabled else ()
        context = ToolContext(user=self.request.user, conversation_id=answer.conversation_id)
        breaker = provider_breaker()
        for round_number in range(self.settings.max_tool_rounds + 1):
            tools_allowed = round_number < self.settings.max_tool_rounds

            def make_round(chosen: Target, turns: tuple[ChatTurn, ...] = turns, tools_allowed: bool = tools_allowed,
                           round_number: int = round_number) -> ModelRound:
                model_request = ModelRequest(
                    model=chosen.model, turns=turns, max_output_tokens=self.settings.max_output_tokens,
                    tools=tools, tools_allowed=tools_allowed,
                )
                return ModelRound(chosen.provider, model_request, context, round_number=round_number,
                                  on_accepted=lambda: self._start_user_message_save(answer))

            # Another provider may take over only while nothing at all has been streamed.
            fallback = fallback_target(target, self.settings) if round_number == 0 else None
            resilient = self._resilient = ResilientRound(
                [target] if fallback is None else [target, fallback], make_round, breaker, self.settings, round_number
            )
            try:
                async for chunk in resilient.stream(answer, self.started):
                    yield chunk
                model_round = resilient.model_round
                assert model_round is not None
                if model_round.wants_tools:
                    async for chunk in model_round.tool_results(answer):
                        yield chunk
            finally:
                if resilient.model_round is not None:  # its usage is in answer.calls already (ResilientRound)
                    resilient.model_round.cancel_tools()
                    answer.finish = resilient.model_round.finish
            if not model_round.wants_tools:
                break
            target = resilient.answered_by
            turns = (*turns, *model_round.next_turns())
        if answer.finish is None:
            raise StreamInterrupted("stream ended without a stop reason")
        answer.outcome = "complete" if answer.finish.complete else "partial"

    async def _prepare(self) -> tuple[Target, tuple[ChatTurn, ...]]:
        """Route the query and gather its context (the only database access before the first token: a read). A forced
        provider that cannot answer raises TargetUnavailable, before any chunk (callers check it first)."""
        request = self.request
        self.place = await self._place()
        if self.place is not None and self.place.question is not None:
            self.content = self.place.question.content
        history = self.place.turns if self.place is not None else []
        classify_started = time.perf_counter()
        read = history_texts(history)
        classification = classify(self.content, read, self.settings.router_threshold)
        self.classification_ms = _ms_since(classify_started)
        self.routing, self.asked = _decision(classification), (*read, self.content)
        route = classification.route if request.route == "auto" else request.route
        if request.route != "auto":
            self.route_reason = "user"
        elif request.prefer_simple and route == "complex":
            route, self.route_reason = "simple", "budget"
        self.routing["reason"] = self.route_reason  # kept, so a reloaded conversation says why as the stream did
        turns = fit_to_budget(history, ChatTurn("user", self.content), self.settings.context_token_budget)
        target = resolve_route(route, self.settings, provider=request.provider, model=request.model)
        return target, turns

    async def _place(self) -> services.Place | None:
        """Where the answer goes in its conversation (None: a new conversation). Raises ConversationNotFound or
        MessageNotFound."""
        request = self.request
        if request.regenerate_of is not None:
            return await database_sync_to_async(services.regeneration_place)(
                user=request.user, answer_id=request.regenerate_of
            )
        if not request.conversation_id:
            if request.edit_of is not None:
                raise MessageNotFound("edit_of without a conversation")
            return None
        found = await database_sync_to_async(services.conversation_history)(
            user=request.user, conversation_id=request.conversation_id, edit_of=request.edit_of
        )
        if found is None:
            raise ConversationNotFound(request.conversation_id)
        return found

    def _new_answer(self, target: Target) -> Answer:
        request, place = self.request, self.place
        question = place.question if place is not None else None
        return Answer(
            conversation_id=place.conversation_id if place is not None else uuid.uuid4(),
            user_message_id=question.id if question is not None else uuid.uuid4(),
            user_parent_id=place.user_parent_id if place is not None else None,
            user_message_new=question is None,
            conversation_new=place is None,
            route=target.route,
            provider=target.provider.name,
            model=target.model,
            client_msg_id=request.client_msg_id,
            classification_ms=self.classification_ms,
            message_id=self.message_id,
            route_requested=request.route,
            routing=self.routing,
            regenerate_of=request.regenerate_of,
            asked=self.asked,
        )

    @property
    def conversation_id(self) -> str | None:
        """The answer's conversation, as far as known yet (a new conversation's id exists once the answer starts)."""
        if self.answer is not None:
            return str(self.answer.conversation_id)
        if self.place is not None:
            return str(self.place.conversation_id)
        return self.request.conversation_id

    @property
    def row_saved(self) -> bool:
        """Whether the answer's placeholder row exists (so it can be checkpointed)."""
        saved = self._user_saved
        return saved is not None and saved.done() and not saved.cancelled() and saved.exception() is None

    def _start_user_message_save(self, answer: Answer) -> asyncio.Future[None]:
        """Save the user's message with its answer's placeholder, once: at the provider's acceptance, or at the end
        if it never came."""
        if self._user_saved is None:
            exchange = services.Exchange(self.request.user, answer, self.content)
            self._user_saved = exchange_writes().submit(exchange)
        return self._user_saved

    async def _finish(self, answer: Answer) -> None:
        """Settle the last chunk and save the answer with it: shielded, so a second cancellation cannot lose it.

        An answer no provider ever accepted (every breaker open, every attempt refused, a stop before the first
        token) streamed nothing: its last chunk goes out without waiting for the save (`saved`, which whoever runs
        the stream awaits before letting go of it)."""
        answer.total_ms = _ms_since(self.started)
        if self._resilient is not None:
            self._resilient.abandon(answer)
        metadata = answer_metadata(answer)
        if answer.outcome == "error":
            self.final = self._numbered(StreamChunk("error", answer.error, {**metadata, "code": "provider_error"}))
        else:
            self.final = self._numbered(StreamChunk("end", "", metadata))
        self.saved = asyncio.ensure_future(
            _save(self.request.user, self._user_saved, answer, self.content)
        )
        if self._user_saved is not None:
            await asyncio.shield(self.saved)


async def prepare_providers() -> None:
    """Build the configured providers' SDK clients ahead of the first answer."""
    await warm_providers(pam_settings())


def process_request_stream(request: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
    """Answer one user message as a stream of chunks (see AnswerStream)."""
    return AnswerStream(request).chunks()
