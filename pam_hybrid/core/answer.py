"""What the gateway knows about one answer as it streams, and hands to the services to save."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from pam_hybrid.core.chunks import Finish, Usage


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
    parts: list[str] = field(default_factory=list)
    usage: Usage | None = None
    finish: Finish | None = None
    ttft_ms: float | None = None
    total_ms: float = 0.0
    outcome: str = "error"  # until the stream proves otherwise
    error: str = ""
    cost_usd: Decimal | None = None

    def add_text(self, text: str, elapsed_ms: float) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = elapsed_ms
        self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)

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
        return "cancelled" if self.outcome == "cancelled" else "interrupted"
