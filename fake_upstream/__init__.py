"""A local fake of the OpenAI and Anthropic streaming HTTP APIs, for tests and benchmarks."""

from __future__ import annotations

from fake_upstream.records import Outcome, RecordedRequest
from fake_upstream.scenarios import (
    FAULT_HANG_LIMIT_MS,
    FAULT_KINDS,
    FAULT_RETRY_AFTER_S,
    FakeToolCall,
    FaultKind,
    Provider,
    Scenario,
)
from fake_upstream.server import FakeUpstream
from fake_upstream.text import argument_pieces, default_reply, input_token_count, last_user_text, tokenize

__all__ = [
    "FAULT_HANG_LIMIT_MS",
    "FAULT_KINDS",
    "FAULT_RETRY_AFTER_S",
    "FakeToolCall",
    "FakeUpstream",
    "FaultKind",
    "Outcome",
    "Provider",
    "RecordedRequest",
    "Scenario",
    "argument_pieces",
    "default_reply",
    "input_token_count",
    "last_user_text",
    "tokenize",
]
