"""One round of an answer: a single model call, streamed, with the tool calls it asks for started at once.

The round turns provider events into the chunks the client sees (`token`, `tool_call`) and keeps what the
next round needs: the text, the calls with their running tasks, the usage and the stop reason; `record` says what
the call cost, however it ended (reported by the provider, or estimated from what was sent and received).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.answer import Answer, ModelCall
from pam_hybrid.domain.chunks import (
    Accepted,
    ChatTurn,
    Finish,
    StreamChunk,
    TextDelta,
    Thinking,
    ToolCall,
    ToolResult,
    Usage,
)
from pam_hybrid.domain.exceptions import CircuitOpen, ProviderError, ProviderTimedOut
from pam_hybrid.gateway.deadlines import with_deadlines
from pam_hybrid.pricing import call_cost
from pam_hybrid.providers.base import ModelRequest, Provider
from pam_hybrid.providers.tokens import estimate_input_tokens, estimate_output_tokens
from pam_hybrid.tools.base import ToolContext
from pam_hybrid.tools.runner import run_tool_call


def _arguments_for_display(arguments_json: str) -> Any:
    try:
        return json.loads(arguments_json)
    except ValueError:
        return arguments_json


@dataclass(slots=True)
class ModelRound:
    """The state of one model call: what it said, which tools it called, what it cost."""

    provider: Provider
    request: ModelRequest
    tool_context: ToolContext
    parts: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    tasks: list[asyncio.Task[ToolResult]] = field(default_factory=list)
    on_accepted: Callable[[], object] | None = None
    round_number: int = 0
    usage: Usage | None = None
    finish: Finish | None = None
    accepted: bool = False
    thinking: list[str] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.perf_counter)

    @property
    def wants_tools(self) -> bool:
        return bool(self.calls) and self.finish is not None and self.finish.tool_use

    async def stream(
        self, settings: PamSettings, answer: Answer, answer_started: float
    ) -> AsyncGenerator[StreamChunk, None]:
        events = self.provider.stream(self.request, settings)
        async for event in with_deadlines(events, settings, answer_started):
            if isinstance(event, TextDelta):
                answer.add_text(event.text, (time.perf_counter() - answer_started) * 1000)
                self.parts.append(event.text)
                yield StreamChunk("token", event.text)
            elif isinstance(event, ToolCall):
                self.calls.append(event)
                self.tasks.append(asyncio.create_task(run_tool_call(event, self.tool_context)))
                yield StreamChunk("tool_call", "", {
                    "call_id": event.call_id, "name": event.name,
                    "arguments": _arguments_for_display(event.arguments_json),
                })
            elif isinstance(event, Usage):
                self.usage = event
            elif isinstance(event, Finish):
                self.finish = event
            elif isinstance(event, Thinking):
                self.thinking.append(event.text)
            elif isinstance(event, Accepted):
                self.accepted = True
                if self.on_accepted is not None:
                    self.on_accepted()

    async def tool_results(self, answer: Answer) -> AsyncGenerator[StreamChunk, None]:
        """A `tool_result` chunk for each call as it finishes (they run concurrently)."""
        for finished in asyncio.as_completed(self.tasks):
            result = await finished
            yield StreamChunk("tool_result", result.content, {
                "call_id": result.call_id, "name": result.name,
                "ok": result.ok, "duration_ms": result.duration_ms,
            })
        for call, result in zip(self.calls, self.results_in_call_order(), strict=True):
            answer.log_tool(call, result)

    def results_in_call_order(self) -> tuple[ToolResult, ...]:
        return tuple(task.result() for task in self.tasks)

    def next_turns(self) -> tuple[ChatTurn, ChatTurn]:
        """The assistant's tool-calling turn and the results turn, for the next round's context."""
        return (
            ChatTurn("assistant", "".join(self.parts), tool_calls=tuple(self.calls)),
            ChatTurn("tool", tool_results=self.results_in_call_order()),
        )

    def cancel_tools(self) -> None:
        for task in self.tasks:
            task.cancel()

    def record(self, ended: str, error: str = "") -> ModelCall:
        """This call as it ended: its usage and cost, reported by the provider, else estimated (never $0 for a call
        the provider may bill), or free when the provider refused it (see `_billable`)."""
        refused = self.usage is None and not self.accepted and not _billable(ended)
        usage = Usage() if refused else self._usage()
        return ModelCall(
            provider=self.provider.name, model=self.request.model, usage=usage,
            cost_usd=Decimal(0) if refused else call_cost(self.request.model, usage, self.started_at),
            finish_reason=self.finish.reason if self.finish else "", ended=ended, accepted=self.accepted,
            refused=refused, round=self.round_number, error=error[:300], started_at=self.started_at,
            duration_ms=round((time.perf_counter() - self.started) * 1000, 1),
        )

    def _usage(self) -> Usage:
        """The provider's final report; else its partial one (message_start: the input is the provider's) with the
        output estimated from what was received, or everything estimated from what was sent and received."""
        if self.usage is not None and not self.usage.partial:
            return self.usage
        output = estimate_output_tokens(self.provider.name, self.request.model, "".join(self.parts), self.calls,
                                        "".join(self.thinking))
        if self.usage is not None:
            return replace(self.usage, output_tokens=max(self.usage.output_tokens, output), estimated=True,
                           partial=False)
        return Usage(input_tokens=estimate_input_tokens(self.provider.name, self.request.model, self.request),
                     output_tokens=output, estimated=True)

    def ended_by(self, error: ProviderError | None) -> str:
        """Why this call ended: its stop reason, or the error (or its absence: a stream cut without one)."""
        if error is None:
            return _finish_kind(self.finish)
        if isinstance(error, ProviderTimedOut):
            if self.parts or self.calls:
                return "timeout"
            return "thinking_timeout" if self.thinking else "first_token_timeout"
        return "error" if self.accepted else "refused"


LENGTH_REASONS = frozenset({"length", "max_tokens", "model_context_window_exceeded"})


def _finish_kind(finish: Finish | None) -> str:
    if finish is None:
        return "interrupted"
    if finish.complete:
        return "complete"
    if finish.tool_use:
        return "tool_use"
    return "length" if finish.reason in LENGTH_REASONS else "stopped"


def _billable(ended: str) -> bool:
    """Whether a call the provider never accepted may still be billed: one we abandoned while it may have been
    working on the request (a timeout or a stop while waiting for its response). An error status or a failed
    connection is the provider refusing it: free."""
    return ended in ("first_token_timeout", "thinking_timeout", "timeout", "cancelled")


def circuit_open_call(provider: str, model: str, error: CircuitOpen, round_number: int) -> ModelCall:
    """The call an open breaker refused: nothing was sent, nothing is owed."""
    return ModelCall(provider=provider, model=model, cost_usd=Decimal(0), ended="circuit_open", accepted=False,
                     refused=True, round=round_number, error=str(error)[:300])
