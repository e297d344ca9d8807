"""Typed values that flow through the gateway.

Providers yield `ProviderEvent`s (accepted, text pieces, usage, the finish reason); the gateway turns them into
`StreamChunk`s, the frames the browser sees, each with one serialiser
(`to_frame`, `frame_text`) and its inverse (`from_frame`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

ChunkType = Literal["start", "token", "tool_call", "tool_result", "end", "error"]


_json_string = json.JSONEncoder(ensure_ascii=False).encode


def _utc_now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class StreamChunk:
    """One frame of a streamed answer, as sent over the socket."""

    chunk_type: ChunkType
    content: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: str = field(default_factory=_utc_now_iso)

    def to_frame(self) -> dict[str, Any]:
        return {
            "type": "stream",
            "chunk_type": self.chunk_type,
            "content": self.content,
            "metadata": self.metadata,
            "timestamp": self.timestamp,
        }

    def frame_text(self) -> str:
        """The frame as the socket's JSON text: serialised once, whoever receives it."""
        metadata = self.metadata
        if self.chunk_type == "token" and len(metadata) == 1 and type(metadata.get("seq")) is int:
            # Most frames of an answer: the same text json.dumps gives, written directly at about half its cost.
            return (f'{{"type": "stream", "chunk_type": "token", "content": {_json_string(self.content)}, '
                    f'"metadata": {{"seq": {metadata["seq"]}}}, "timestamp": {_json_string(self.timestamp)}}}')
        return json.dumps(self.to_frame(), ensure_ascii=False)

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> StreamChunk:
        """The chunk a `stream` frame (as sent, or as kept in an answer's stream log) describes."""
        return cls(frame["chunk_type"], frame.get("content", ""), dict(frame.get("metadata", {})),
                   frame.get("timestamp", ""))


@dataclass(frozen=True, slots=True)
class Accepted:
    """The provider accepted the request (its response has begun); tokens are on their way."""


@dataclass(frozen=True, slots=True)
class Thinking:
    """The model is visibly working (a thinking or reasoning piece): progress, but not content for the user."""

    text: str = ""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of answer text."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts for one model call, as the provider reported them (or estimated, when it could not).

    OpenAI's input count includes its cached tokens (`input_includes_cached`); Anthropic's excludes cache
    reads and writes, which it reports beside it. `cache_creation_input_tokens` counts every cache write;
    `cache_write_1h_tokens` is the part of it written with a one-hour lifetime (the rest lives five minutes).
    `reasoning_tokens` is the part of the output spent thinking, where the provider reports it.
    `estimated`: some count was not reported by the provider (the stream ended first) and was estimated.
    `partial`: reported before the call ended (Anthropic's `message_start`): the input counts are the provider's,
    the output count is not final yet.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    input_includes_cached: bool = False
    estimated: bool = False
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    partial: bool = False

    @property
    def cache_write_5m_tokens(self) -> int:
        return max(0, self.cache_creation_input_tokens - self.cache_write_1h_tokens)

    @property
    def uncached_input_tokens(self) -> int:
        if self.input_includes_cached:
            return max(0, self.input_tokens - self.cached_input_tokens - self.cache_creation_input_tokens)
        return self.input_tokens

    @property
    def total_input_tokens(self) -> int:
        return self.uncached_input_tokens + self.cached_input_tokens + self.cache_creation_input_tokens


@dataclass(frozen=True, slots=True)
class Finish:
    """The provider's own stop reason. Only a finish event makes an answer complete.

    `complete`: the model ended its answer normally. `tool_use`: it stopped to have tools run.
    """

    reason: str
    complete: bool
    tool_use: bool = False


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call from the model: the provider's call id, the tool's name and its raw JSON arguments."""

    call_id: str
    name: str
    arguments_json: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What running one tool call produced: `content` is the JSON text the model sees, also on error."""

    call_id: str
    name: str
    ok: bool
    content: str
    duration_ms: float


ProviderEvent = Accepted | Thinking | TextDelta | ToolCall | Usage | Finish


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """One turn of context sent to a model: a user's or assistant's text, an assistant's tool calls, or the
    results of those calls (role "tool")."""

    role: Literal["user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()
