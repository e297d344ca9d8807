"""The text of a request and of a reply: tokens, argument pieces, the last user turn, input token counts."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

TOKENS_PER_MESSAGE = 4

_TOKEN_RE = re.compile(r"\S+\s*|\s+")
_WORD_RE = re.compile(r"\S+")


def tokenize(text: str) -> list[str]:
    """Split text into tokens on word boundaries, keeping the spaces: "a b" -> ["a ", "b"]."""
    return _TOKEN_RE.findall(text)


def argument_pieces(text: str, size: int | None) -> list[str]:
    """Split a tool call's argument text as the fake streams it (see :attr:`Scenario.split_arguments`).

    Pieces of ``size`` UTF-8 bytes, a boundary inside a multi-byte character moved to its end; ``[text]``
    when size is None; ``[""]`` for empty text (a call always has at least one piece).
    """
    if not text or size is None:
        return [text]
    data = text.encode()
    pieces: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + size, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # continuation byte: still inside a character
            end += 1
        pieces.append(data[start:end].decode())
        start = end
    return pieces


def _block_text(block: Any) -> str:
    """Text of one content block: text parts, tool results (their own content), tool inputs as JSON."""
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return text if isinstance(text, str) else ""
    if kind == "tool_result":
        return _content_text(block.get("content"))
    if kind == "tool_use":
        return json.dumps(block.get("input", {}), ensure_ascii=False, default=str)
    return ""  # images, documents, thinking blocks of earlier turns...


def _content_text(content: Any) -> str:
    """Text of a message's content: a string, or the text inside a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text for text in map(_block_text, content) if text)
    return ""


def _message_text(message: Mapping[str, Any]) -> str:
    """Everything of a message that counts as input: its content, and an OpenAI assistant message's
    ``tool_calls`` (name and argument text)."""
    texts = [_content_text(message.get("content"))]
    tool_calls = message.get("tool_calls")
    for call in tool_calls if isinstance(tool_calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            texts += [value for value in (function.get("name"), function.get("arguments")) if isinstance(value, str)]
    return " ".join(text for text in texts if text)


def last_user_text(body: Mapping[str, Any]) -> str:
    """Text of the last user turn of a chat request ("" if there is none).

    That is the last ``user`` message (an Anthropic one made of ``tool_result`` blocks gives their text),
    or, when the conversation ends with OpenAI ``tool`` messages, their contents joined with spaces.
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    tool_results: list[str] = []
    for message in reversed(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role == "tool":
            tool_results.append(_content_text(message.get("content")))
        elif tool_results:
            break
        elif role == "user":
            return _content_text(message.get("content"))
    return " ".join(reversed(tool_results))


def default_reply(body: Mapping[str, Any]) -> str:
    """The reply the fake gives when no scenario is queued."""
    return f"Echo from {body.get('model', 'unknown')}: {last_user_text(body)}"


@dataclass(frozen=True)
class PromptBlock:
    """One block of a request's prompt, in the order the APIs read it (tools, system, messages): what it is
    (canonical JSON, ``cache_control`` left out), its input tokens, and its ``cache_control`` marker if any."""

    part: Literal["tools", "system", "messages"]
    material: str
    tokens: int
    cache_control: Any = None


def _words(text: str) -> int:
    return len(_WORD_RE.findall(text))


def _without_marker(block: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in block.items() if key != "cache_control"}


def _content_blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [{"type": "text", "text": b} if isinstance(b, str) else b for b in content if isinstance(b, str | dict)]
    return []


def _message_blocks(part: Literal["system", "messages"], message: Mapping[str, Any]) -> list[PromptBlock]:
    """A message's blocks; its ``TOKENS_PER_MESSAGE`` go with the first (an empty message still has them)."""
    role = message.get("role")
    blocks = []
    for block in _content_blocks(message.get("content")):
        material = json.dumps({"role": role, "block": _without_marker(block)}, ensure_ascii=False, sort_keys=True)
        blocks.append(PromptBlock(part, material, _words(_block_text(block)), block.get("cache_control")))
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        call_text = _message_text({"tool_calls": calls})
        material = json.dumps({"role": role, "tool_calls": calls}, ensure_ascii=False, sort_keys=True)
        blocks.append(PromptBlock(part, material, _words(call_text)))
    if not blocks:
        blocks.append(PromptBlock(part, json.dumps({"role": role}), 0))
    first = blocks[0]
    blocks[0] = PromptBlock(first.part, first.material, first.tokens + TOKENS_PER_MESSAGE, first.cache_control)
    return blocks


def prompt_blocks(body: Mapping[str, Any]) -> list[PromptBlock]:
    """The blocks of a chat request, in the order tools, system, messages (see :func:`input_token_count`)."""
    blocks: list[PromptBlock] = []
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict):
            material = json.dumps(_without_marker(tool), ensure_ascii=False, sort_keys=True)
            tokens = _words(material) + TOKENS_PER_MESSAGE
            blocks.append(PromptBlock("tools", material, tokens, tool.get("cache_control")))
    if body.get("system"):
        blocks += _message_blocks("system", {"role": "system", "content": body["system"]})
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            blocks += _message_blocks("messages", message)
    return blocks


def input_token_count(body: Mapping[str, Any]) -> int:
    """Deterministic stand-in for the provider's input token count.

    Words of every message's text, plus ``TOKENS_PER_MESSAGE`` per message; Anthropic's top-level
    ``system`` prompt counts as one more message. A message's text is its string content or the text
    inside its content blocks: ``text`` parts, ``tool_result`` contents, ``tool_use`` inputs as JSON, and an
    OpenAI assistant message's ``tool_calls`` names and arguments (``tool`` messages are messages like any
    other). Each tool definition (``tools``) counts as the words of its JSON (keys sorted, ``cache_control``
    left out) plus ``TOKENS_PER_MESSAGE``, as both APIs bill tool definitions as input.
    """
    return sum(block.tokens for block in prompt_blocks(body))
