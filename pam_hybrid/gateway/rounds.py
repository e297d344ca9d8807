"""One round of an answer: a single model call, streamed, with the tool calls it asks for started at once.

The round turns provider events into the chunks the client sees (`token`, `tool_call`) and keeps what the
next round needs: the text, the calls with their running tasks, the usage and the stop reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.answer import Answer, ModelCall
from pam_hybrid.domain.chunks import (
    Accepted,
    ChatTurn,
    Finish,
    StreamChunk,
    TextDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from pam_hybrid.domain.context import estimate_tokens
from pam_hybrid.domain.pricing import cost_usd
from pam_hybrid.gateway.deadlines import with_deadlines
from pam_hybrid.providers.base import ModelRequest, Provider
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
    usage: Usage | None = None
    finish: Finish | None = None

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
            elif isinstance(event, Accepted) and self.on_accepted is not None:
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

    def record(self) -> ModelCall:
        """This call's usage and cost; estimated when the stream ended before the provider reported usage."""
        usage = self.usage or Usage(
            input_tokens=sum(estimate_tokens(t.content) + sum(estimate_tokens(r.content) for r in t.tool_results)
                             for t in self.request.turns),
            output_tokens=estimate_tokens("".join(self.parts) + "".join(c.arguments_json for c in self.calls)),
            estimated=True,
        )
        return ModelCall(
            provider=self.provider.name, model=self.request.model, usage=usage,
            cost_usd=cost_usd(self.request.model, usage),
            finish_reason=self.finish.reason if self.finish else "",
        )
