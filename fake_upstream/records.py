"""What the fake received, and what became of each request."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from fake_upstream.scenarios import FaultKind, Provider, Scenario

Outcome = Literal[
    "pending",  # still being answered
    "completed",  # the full answer, final event included, was sent
    "error_status",  # answered with an HTTP error status (scripted or 400/404)
    "error_in_band",  # an error event was sent mid-stream (HTTP status 200)
    "closed_early",  # the stream ended cleanly before its final event
    "reset",  # the TCP connection was aborted with a RST
    "malformed",  # a malformed event was sent mid-stream, then the connection closed (Scenario.malformed_after_tokens)
    "dropped",  # the connection was aborted with a RST before any response byte (Scenario.drop_connection)
    "hang_expired",  # a hang lasted its hang_limit_ms: the connection was closed, the response unfinished
    "client_disconnected",  # the client went away before the answer was complete (also before any response byte)
    "server_stopped",  # the server shut down while answering
]


@dataclass
class RecordedRequest:
    """One request as the fake received it, and what became of it.

    Times are ``time.monotonic()`` readings taken in the server's thread (the clock is shared by the
    whole process, so tests may compare them with their own ``time.monotonic()``).
    """

    provider: Provider | None
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    received_at: float
    stream: bool = False
    scenario: Scenario | None = None
    status: int | None = None
    """The HTTP status of the answer, set just before its status line is sent (None until then, and for good
    when none is: a dropped connection, a hang before the headers)."""
    outcome: Outcome = "pending"
    tokens_sent: int = 0
    """Output units sent (see :class:`Scenario`)."""
    first_token_at: float | None = None
    """When the first output unit that puts bytes on the wire was sent (OpenAI's hidden reasoning does not)."""
    ended_at: float | None = None
    tool_call_ids: list[str] = field(default_factory=list)
    """Ids of the scenario's tool calls, in order (generated or scripted; also those a cut never sent)."""
    fault: FaultKind | None = None
    """The random fault this request got (its scenario is in ``scenario``), or None."""

    @property
    def model(self) -> str | None:
        return self.json.get("model") if isinstance(self.json, dict) else None

    @property
    def messages(self) -> list[Any]:
        messages = self.json.get("messages") if isinstance(self.json, dict) else None
        return messages if isinstance(messages, list) else []

    @property
    def tools(self) -> list[Any]:
        tools = self.json.get("tools") if isinstance(self.json, dict) else None
        return tools if isinstance(tools, list) else []


def conclude(record: RecordedRequest, outcome: Outcome) -> None:
    """Record how an answer ended. Called just *before* the bytes that show it to the client, so that a
    test which has seen the end of the answer also sees the outcome."""
    record.outcome, record.ended_at = outcome, time.monotonic()
