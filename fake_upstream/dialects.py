"""The wire format a request gets: its provider's dialect for an answer, its provider's shape for an error."""

from __future__ import annotations

from typing import Any

from fake_upstream.answer import Answer
from fake_upstream.anthropic import AnthropicDialect
from fake_upstream.openai import OpenAIDialect
from fake_upstream.scenarios import Provider

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"

Dialect = OpenAIDialect | AnthropicDialect


def provider_for_path(path: str) -> Provider | None:
    if path == OPENAI_PATH:
        return "openai"
    if path == ANTHROPIC_PATH:
        return "anthropic"
    return None


def dialect_for(provider: Provider, answer: Answer) -> Dialect:
    return OpenAIDialect(answer) if provider == "openai" else AnthropicDialect(answer)


def error_body(provider: Provider, status: int, error_type: str | None, message: str | None, request_id: str) -> Any:
    if provider == "anthropic":
        return AnthropicDialect.error_body(status, error_type, message, request_id)
    return OpenAIDialect.error_body(status, error_type, message)
