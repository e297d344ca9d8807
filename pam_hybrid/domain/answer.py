"""What the gateway knows about one answer as it streams, and hands to the services to save."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pam_hybrid.domain.chunks import Finish, ToolCall, ToolResult, Usage
from pam_hybrid.domain.pricing import CENT_FRACTION, total_cost


@dataclass(slots=True)
class ModelCall:
    """One call to a provider within an answer: every attempt (retried, fallen back from, refused, abandoned) and
    every tool round makes one, whatever became of it.

    `ended` says why it ended: complete, tool_use, length, stopped (another stop reason), interrupted (the stream
    ended without one), first_token_timeout, thinking_timeout, timeout, error, refused, circuit_open, cancelled.
    `refused`: the provider never took the request (an error status, a failed connection, an open breaker): free.
    """

    provider: str
    model: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal | None = None
    finish_reason: str = ""
    ended: str = "complete"
    accepted: bool = True
    refused: bool = False
    round: int = 0
    error: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    duration_ms: float = 0.0

    @property
    def basis(self) -> str:
        """How its cost is known: reported, estimated, refused (free) or unknown (no price for its model)."""
        if self.refused:
            return "refused"
        if self.cost_usd is None:
            return "unknown"
        return "estimated" if self.usage.estimated else "reported"

    def as_record(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            **asdict(self.usage),
            "cost_usd": None if self.cost_usd is None else f"{self.cost_usd:f}",
            "basis": self.basis,
            "ended": self.ended,
            "finish_reason": self.finish_reason,
        }


@dataclass(slots=True)
class Answer:
    """One assistant answer in progress: its ids exist before any database write."""

    conversation_id: uuid.UUID
    user_message_id: uuid.UUID
    route: str
    provider: str
    model: str
    client_msg_id: str
    classification_ms: float
    message_id: uuid.UUID = field(default_factory=uuid.uuid4)
    user_parent_id: uuid.UUID | None = None
    """The message the user's message follows: the branch's last answer, or the edited message's parent."""
    user_message_new: bool = True
    """False for a regenerated answer: its user message is saved already."""
    conversation_new: bool = True
    """Whether this exchange starts its conversation (False when it answers in an existing one)."""
    parts: list[str] = field(default_factory=list)
    calls: list[ModelCall] = field(default_factory=list)
    tool_log: list[dict[str, Any]] = field(default_factory=list)
    stream_log: list[int | dict[str, Any]] = field(default_factory=list)
    """Every frame sent, by sequence number: a token as the text's end offset after it, any other frame whole."""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """Model calls that failed before the answer began, each with its provider, model and reason."""
    fallback_from: str = ""
    """The provider first chosen, when another one answered."""
    fallback_from_model: str = ""
    fallback_reason: str = ""
    finish: Finish | None = None
    ttft_ms: float | None = None
    total_ms: float = 0.0
    outcome: str = "error"  # until the stream proves otherwise
    error: str = ""
    cancel_reason: str = "cancelled"
    route_requested: str = "auto"
    """The route the client asked for: auto, simple or complex."""
    routing: dict[str, Any] = field(default_factory=dict)
    """The router's decision for the message (route, score, threshold, model_version, features), kept with its
    usage; made for forced routes too."""
    regenerate_of: uuid.UUID | None = None
    """The answer this one is a new version of, when the user asked for one."""
    asked: tuple[str, ...] = ()
    """What the router read: the last turns before the user's message, then the message (for routing signals)."""

    def add_text(self, text: str, elapsed_ms: float) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = elapsed_ms
        self.parts.append(text)

    def log_tool(self, call: ToolCall, result: ToolResult) -> None:
        self.tool_log.append({
            "call_id": call.call_id, "name": call.name, "arguments": call.arguments_json,
            "ok": result.ok, "result": result.content, "duration_ms": result.duration_ms,
        })

    @property
    def fallback(self) -> dict[str, str] | None:
        if not self.fallback_from:
            return None
        return {"from_provider": self.fallback_from, "from_model": self.fallback_from_model,
                "reason": self.fallback_reason}

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def usage(self) -> Usage:
        """Every model call's usage, summed, input as uncached input beside the cache reads and writes (so OpenAI's
        input, which includes its cached tokens, and Anthropic's, which does not, add up)."""
        usages = [call.usage for call in self.calls]
        return Usage(
            input_tokens=sum(u.uncached_input_tokens for u in usages),
            output_tokens=sum(u.output_tokens for u in usages),
            cached_input_tokens=sum(u.cached_input_tokens for u in usages),
            cache_creation_input_tokens=sum(u.cache_creation_input_tokens for u in usages),
            cache_write_1h_tokens=sum(u.cache_write_1h_tokens for u in usages),
            reasoning_tokens=sum(u.reasoning_tokens for u in usages),
            estimated=any(u.estimated for u in usages),
        )

    @property
    def cost_usd(self) -> Decimal | None:
        """What every call cost; unknown if one call's price is."""
        return total_cost([call.cost_usd for call in self.calls])

    @property
    def estimated_cost_usd(self) -> Decimal:
        """The part of the cost that is estimated (calls the provider never reported usage for)."""
        return sum((call.cost_usd for call in self.calls if call.basis == "estimated" and call.cost_usd is not None),
                   Decimal(0)).quantize(CENT_FRACTION)

    @property
    def unknown_cost_calls(self) -> int:
        return sum(1 for call in self.calls if call.cost_usd is None)

    @property
    def status(self) -> str:
        """complete, partial (some text, or cut short) or error (nothing usable)."""
        if self.outcome == "complete":
            return "complete"
        if self.outcome == "error" and not self.parts:
            return "error"
        return "partial"

    @property
    def finish_reason(self) -> str:
        if self.finish is not None:
            return self.finish.reason
        return self.cancel_reason if self.outcome == "cancelled" else "interrupted"
