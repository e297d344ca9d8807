"""The Anthropic Messages wire format: ``message_start`` … ``message_stop`` events, error bodies, the plain message."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any, Literal

from fake_upstream.answer import Answer, Unit
from fake_upstream.scenarios import Provider
from fake_upstream.wire import CUT_MARK, cut_json, dumps, reason_phrase

# Finish reasons in OpenAI's vocabulary, translated so a scenario can say either.
_TO_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}

_Block = tuple[Literal["redacted", "thinking", "text", "tool"], int]


class AnthropicDialect:
    """One answer as the Messages API sends it: the stream's events, the error bodies and the non-streaming body."""

    provider: Provider = "anthropic"

    _ERRORS: dict[int, tuple[str, str]] = {
        400: ("invalid_request_error", "Invalid request."),
        401: ("authentication_error", "invalid x-api-key"),
        403: ("permission_error", "Your API key does not have permission to use the specified resource."),
        404: ("not_found_error", "Not found."),
        413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        429: ("rate_limit_error", "This request would exceed your organization's rate limit."),
        500: ("api_error", "Internal server error"),
        529: ("overloaded_error", "Overloaded"),
    }

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.message_id = "msg_" + answer.request_id.removeprefix("req_")
        digest = hashlib.sha256(f"{answer.request_id}:{''.join(answer.thinking)}".encode()).digest()
        self.signature = base64.b64encode(b"\x12\x08fake" + digest * 3).decode()
        self.redacted_data = base64.b64encode(b"\x0a\x10redacted" + digest * 4).decode()
        # Content blocks, in order: thinking, text, one per tool call.
        self.blocks: list[_Block] = []
        if answer.redacted_thinking:
            self.blocks.append(("redacted", 0))
        if answer.has_thinking:
            self.blocks.append(("thinking", 0))
        if answer.has_text:
            self.blocks.append(("text", 0))
        self.blocks += [("tool", index) for index in range(len(answer.tool_calls))]
        self._position = {block: index for index, block in enumerate(self.blocks)}

    @staticmethod
    def finish_reason(finish: str) -> str:
        return _TO_ANTHROPIC_STOP.get(finish, finish)

    @classmethod
    def error_body(
        cls, status: int, error_type: str | None, message: str | None, request_id: str | None = None
    ) -> dict[str, Any]:
        default_type, default_message = cls._ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", reason_phrase(status))
        )
        return {
            "type": "error",
            "error": {"type": error_type or default_type, "message": message or default_message},
            "request_id": request_id,
        }

    def response_headers(self) -> dict[str, str]:
        return {"request-id": self.answer.request_id, "anthropic-organization-id": "00000000-fake-upstream"}

    @staticmethod
    def _event(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {dumps(data)}\n\n".encode()

    def _usage(self, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": self.answer.input_tokens,
            "cache_creation_input_tokens": self.answer.cache_creation_tokens,
            "cache_read_input_tokens": self.answer.cached_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.answer.cache_creation_tokens - self.answer.cache_write_1h_tokens,
                "ephemeral_1h_input_tokens": self.answer.cache_write_1h_tokens,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def _message(self, content: list[dict[str, Any]], stop_reason: str | None, output_tokens: int) -> dict[str, Any]:
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.answer.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": self._usage(output_tokens),
        }

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return self._event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _block_start(self, index: int) -> tuple[bytes, list[bytes]]:
        """A block's ``content_block_start`` and the events that follow it before its first unit."""
        kind, call_index = self.blocks[index]
        after: list[bytes] = []
        if kind == "redacted":
            block: dict[str, Any] = {"type": "redacted_thinking", "data": self.redacted_data}
        elif kind == "thinking":
            block = {"type": "thinking", "thinking": "", "signature": ""}
        elif kind == "text":
            block = {"type": "text", "text": ""}
        else:
            call = self.answer.tool_calls[call_index]
            block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            after.append(self._delta(index, {"type": "input_json_delta", "partial_json": ""}))
        start = self._event(
            "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
        )
        return start, after

    def _block_stop(self, index: int) -> list[bytes]:
        events = []
        if self.blocks[index][0] == "thinking":
            events.append(self._delta(index, {"type": "signature_delta", "signature": self.signature}))
        events.append(self._event("content_block_stop", {"type": "content_block_stop", "index": index}))
        return events

    # Blocks open lazily when their first unit comes (empty ones in passing); the first block opens in the
    # preamble. A cut answer opens no further block, and leaves a tool block it cut inside unstopped.

    def _block_of(self, unit: Unit) -> int:
        kind, index, _ = unit
        return self._position[(kind, index if kind == "tool" else 0)]

    def _open_through(self, opened: int, target: int) -> tuple[list[bytes], int]:
        """Events that stop the open block and open the next ones up to ``target``; the new open block."""
        events: list[bytes] = []
        while opened < target:
            if opened >= 0:
                events += self._block_stop(opened)
            opened += 1
            start, after = self._block_start(opened)
            events += [start, *after]
        return events, opened

    def _opened_after_steps(self) -> int:
        """The block open once every output unit was sent (-1: none)."""
        if self.answer.schedule:
            return self._block_of(self.answer.schedule[-1])
        return 0 if self.blocks else -1

    def _tail(self) -> list[bytes]:
        """Events after the last output unit, before message_delta: the blocks still to open and stops."""
        answer = self.answer
        opened = self._opened_after_steps()
        events: list[bytes] = []
        if not answer.cut:
            events, opened = self._open_through(opened, len(self.blocks) - 1)
        if opened >= 0:
            kind, index = self.blocks[opened]
            if kind != "tool" or answer.tool_calls[index].complete:
                events += self._block_stop(opened)
        return events

    def preamble(self) -> list[bytes]:
        events = [self._event("message_start", {"type": "message_start", "message": self._message([], None, 1)})]
        ping = self._event("ping", {"type": "ping"})
        if not self.blocks:
            return [*events, ping]
        start, after = self._block_start(0)
        return [*events, start, ping, *after]

    def steps(self) -> Iterator[list[bytes]]:
        """The events of each output unit, rendered as they are due."""
        answer = self.answer
        opened = 0 if self.blocks else -1
        for unit in answer.schedule:
            kind, index, piece = unit
            block_index = self._block_of(unit)
            events, opened = self._open_through(opened, block_index)
            if kind == "thinking":
                events.append(self._delta(block_index, {"type": "thinking_delta", "thinking": answer.thinking[index]}))
            elif kind == "text":
                events.append(self._delta(block_index, {"type": "text_delta", "text": answer.tokens[index]}))
            else:
                partial = answer.tool_calls[index].pieces[piece]
                events.append(self._delta(block_index, {"type": "input_json_delta", "partial_json": partial}))
            yield events

    def ping(self) -> bytes | None:
        return self._event("ping", {"type": "ping"})

    def in_band_error(self) -> bytes:
        body = self.error_body(529, self.answer.error_type, self.answer.error_message, self.answer.request_id)
        body.pop("request_id")  # the in-band event carries only type and error
        return self._event("error", body)

    _CUT_DELTAS: dict[str, tuple[str, str]] = {
        "redacted": ("text_delta", "text"),
        "thinking": ("thinking_delta", "thinking"),
        "text": ("text_delta", "text"),
        "tool": ("input_json_delta", "partial_json"),
    }

    def malformed(self, sent: int) -> bytes:
        """A ``content_block_delta`` for the open block after ``sent`` units, its JSON cut off inside its text."""
        index = self._block_of(self.answer.schedule[sent - 1]) if sent > 0 else 0
        delta_type, key = self._CUT_DELTAS[self.blocks[index][0] if self.blocks else "text"]
        data = {"type": "content_block_delta", "index": index, "delta": {"type": delta_type, key: "par" + CUT_MARK}}
        return f"event: content_block_delta\ndata: {cut_json(data)}\n\n".encode()

    def finale(self, output_tokens: int) -> list[bytes]:
        # Cumulative totals, as message_start's: the input and cache counts again, the output now final.
        usage = {
            "input_tokens": self.answer.input_tokens,
            "cache_creation_input_tokens": self.answer.cache_creation_tokens,
            "cache_read_input_tokens": self.answer.cached_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.answer.cache_creation_tokens - self.answer.cache_write_1h_tokens,
                "ephemeral_1h_input_tokens": self.answer.cache_write_1h_tokens,
            },
            "output_tokens": output_tokens,
        }
        delta = {"stop_reason": self.finish_reason(self.answer.finish), "stop_sequence": None}
        return [
            *self._tail(),
            self._event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
            self._event("message_stop", {"type": "message_stop"}),
        ]

    def complete_body(self, output_tokens: int) -> dict[str, Any]:
        """The non-streaming message: the blocks the stream would have opened (a tool call cut short, or
        whose argument text is not a JSON object, gets ``input: {}``)."""
        answer = self.answer
        content: list[dict[str, Any]] = []
        last_opened = self._opened_after_steps() if self.answer.cut else len(self.blocks) - 1
        for kind, index in self.blocks[: last_opened + 1]:
            if kind == "redacted":
                content.append({"type": "redacted_thinking", "data": self.redacted_data})
            elif kind == "thinking":
                content.append({"type": "thinking", "thinking": "".join(answer.thinking), "signature": self.signature})
            elif kind == "text":
                content.append({"type": "text", "text": "".join(answer.tokens)})
            else:
                call = answer.tool_calls[index]
                try:
                    arguments = json.loads(call.arguments) if call.complete else {}
                except ValueError:
                    arguments = {}
                tool_input = arguments if isinstance(arguments, dict) else {}
                content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input})
        return self._message(content, self.finish_reason(answer.finish), output_tokens)
