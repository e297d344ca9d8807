"""The OpenAI Chat Completions wire format: ``chat.completion.chunk`` events, error bodies, the plain JSON answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from fake_upstream.answer import Answer, malformed_unit
from fake_upstream.scenarios import Provider
from fake_upstream.wire import CUT_MARK, cut_json, dumps, reason_phrase

SYSTEM_FINGERPRINT = "fp_fake0upstream"

# Finish reasons in Anthropic's vocabulary, translated so a scenario can say either.
_TO_OPENAI_FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls", "stop_sequence": "stop"}


class OpenAIDialect:
    """One answer as Chat Completions sends it: the stream's chunks, the error bodies and the non-streaming body."""

    provider: Provider = "openai"

    _ERRORS: dict[int, tuple[str, str | None, str]] = {
        400: ("invalid_request_error", None, "Invalid request."),
        401: (
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        ),
        403: ("invalid_request_error", "unsupported_country_region_territory", "Country not supported."),
        404: ("invalid_request_error", None, "Not found."),
        429: ("requests", "rate_limit_exceeded", "Rate limit reached. Please try again later."),
        500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
        503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    }

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.completion_id = "chatcmpl-" + answer.request_id.removeprefix("req_")
        self.created = int(time.time())
        options = answer.body.get("stream_options")
        options = options if isinstance(options, dict) else {}
        self.include_usage = options.get("include_usage") is True
        self.include_obfuscation = options.get("include_obfuscation", True) is not False

    @staticmethod
    def finish_reason(finish: str) -> str:
        return _TO_OPENAI_FINISH.get(finish, finish)

    @classmethod
    def error_body(cls, status: int, error_type: str | None, message: str | None) -> dict[str, Any]:
        default_type, code, default_message = cls._ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, reason_phrase(status))
        )
        return {
            "error": {
                "message": message or default_message,
                "type": error_type or default_type,
                "param": None,
                "code": code,
            }
        }

    def response_headers(self) -> dict[str, str]:
        return {"x-request-id": self.answer.request_id, "openai-version": "2020-10-01", "openai-processing-ms": "1"}

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        return f"data: {dumps(self._chunk_data(choices, usage))}\n\n".encode()

    def _chunk_data(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.answer.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = usage
        if self.include_obfuscation:
            chunk["obfuscation"] = "fake"
        return chunk

    @staticmethod
    def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    def usage(self, output_tokens: int) -> dict[str, Any]:
        prompt_tokens = self.answer.input_tokens
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": prompt_tokens + output_tokens,
            "prompt_tokens_details": {"cached_tokens": self.answer.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": len(self.answer.thinking),
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def preamble(self) -> list[bytes]:
        answer = self.answer
        if answer.refusal:
            delta: dict[str, Any] = {"role": "assistant", "content": None, "refusal": ""}
        else:
            delta = {"role": "assistant", "content": "" if answer.has_text else None, "refusal": None}
        return [self._chunk([self._choice(delta)])]

    def steps(self) -> Iterator[list[bytes]]:
        """The events of each output unit (none for hidden reasoning), rendered as they are due."""
        answer = self.answer
        for kind, index, piece in answer.schedule:
            if kind == "thinking":
                if answer.reasoning_field is None:
                    yield []  # Chat Completions does not stream reasoning: the unit only takes its time
                else:
                    yield [self._chunk([self._choice({answer.reasoning_field: answer.thinking[index]})])]
            elif kind == "text":
                yield [self._chunk([self._choice({"refusal" if answer.refusal else "content": answer.tokens[index]})])]
            else:
                call = answer.tool_calls[index]
                events = []
                if piece == 0:  # id, type and name only in the call's first delta
                    header = {
                        "index": index,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                    events.append(self._chunk([self._choice({"tool_calls": [header]})]))
                delta = {"index": index, "function": {"arguments": call.pieces[piece]}}
                events.append(self._chunk([self._choice({"tool_calls": [delta]})]))
                yield events

    def ping(self) -> bytes | None:
        return None

    def in_band_error(self) -> bytes:
        body = self.error_body(500, self.answer.error_type, self.answer.error_message)
        return f"data: {dumps(body)}\n\n".encode()

    def malformed(self, sent: int) -> bytes:
        """The next chunk after ``sent`` units, its JSON cut off inside its text (see ``Scenario``)."""
        kind, index, _ = malformed_unit(self.answer.schedule, sent)
        if kind == "tool":
            delta: dict[str, Any] = {"tool_calls": [{"index": index, "function": {"arguments": "par" + CUT_MARK}}]}
        else:
            delta = {"refusal" if self.answer.refusal else "content": "par" + CUT_MARK}
        return f"data: {cut_json(self._chunk_data([self._choice(delta)]))}\n\n".encode()

    def finale(self, output_tokens: int) -> list[bytes]:
        events = [self._chunk([self._choice({}, self.finish_reason(self.answer.finish))])]
        if self.include_usage:
            events.append(self._chunk([], self.usage(output_tokens)))
        events.append(b"data: [DONE]\n\n")
        return events

    def complete_body(self, output_tokens: int) -> dict[str, Any]:
        answer = self.answer
        text = "".join(answer.tokens)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if answer.has_text and not answer.refusal else None,
            "refusal": text if answer.refusal else None,
            "annotations": [],
        }
        calls = [call for call in answer.tool_calls if call.started]
        if calls:
            message["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": "".join(call.pieces)}}
                for call in calls
            ]
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.answer.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self.finish_reason(self.answer.finish),
                }
            ],
            "usage": self.usage(output_tokens),
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
