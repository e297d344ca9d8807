"""Typed values that flow through the gateway.

Providers yield `ProviderEvent`s (accepted, text pieces, usage, the finish reason); the gateway turns them into
`StreamChunk`s, the frames the browser sees, each with one serialiser (`to_frame`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

ChunkType = Literal["start", "token", "tool_call", "tool_result", "end", "error"]


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


@dataclass(frozen=True, slots=True)
class Accepted:
    """The provider accepted the request (its response has begun); tokens are on their way."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of answer text."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts for one model call, as the provider reported them (or estimated, when it could not)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class Finish:
    """The provider's own stop reason. Only a finish event makes an answer complete."""

    reason: str
    complete: bool


ProviderEvent = Accepted | TextDelta | Usage | Finish


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """One turn of context sent to a model."""

    role: Literal["user", "assistant"]
    content: str
