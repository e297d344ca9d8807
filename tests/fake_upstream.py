"""A local fake of the OpenAI and Anthropic streaming HTTP APIs, for tests and benchmarks.

The real providers are unreachable from the test environment, and their failures are rare and hard to
provoke, so the gateway is exercised against this server instead. It speaks the same wire format as the
real APIs, byte for byte where it matters to the official SDKs:

* ``POST /v1/chat/completions`` (OpenAI, SDK ``base_url`` = ``server.openai_base_url``) streams
  ``data: {chat.completion.chunk}`` events: a first chunk with ``delta.role`` and an empty content
  (``null`` when the answer has no text), one chunk per token, a chunk with an empty delta and
  ``finish_reason``, the usage chunk (``choices: []``) only when ``stream_options.include_usage`` was
  requested, and ``data: [DONE]``.
* ``POST /v1/messages`` (Anthropic, SDK ``base_url`` = ``server.anthropic_base_url``) streams
  ``message_start``, ``content_block_start``, ``ping``, one ``content_block_delta`` (``text_delta``) per
  token, ``content_block_stop``, ``message_delta`` (stop reason and the cumulative output token count)
  and ``message_stop``, each as ``event: NAME`` / ``data: JSON``.
* Any other path answers 404 with the provider's JSON error shape (Anthropic's when the request carries
  an ``anthropic-version`` header, OpenAI's otherwise). Requests without ``"stream": true`` get a plain
  JSON answer.

It is written on bare asyncio streams, not a web framework, so that every byte and every fault is under
control: HTTP/1.1 with keep-alive, responses ``text/event-stream`` with ``Transfer-Encoding: chunked``,
each SSE event written as its own chunk and drained at once.

Behaviour is scripted per request with :class:`Scenario` objects queued by :meth:`FakeUpstream.enqueue`
(reply text or tokens, finish reason, usage numbers, HTTP errors, in-band errors, clean early close, TCP
reset, a malformed event, a connection dropped before any response byte, hangs before the status line or in
the stream, with or without pings, optionally bounded in time). A scenario may also script what the real
APIs stream besides text:

* tool calls (:class:`FakeToolCall`), their argument JSON split into small pieces at arbitrary byte
  positions: OpenAI ``delta.tool_calls`` (id, type and name only in a call's first delta, then
  ``function.arguments`` pieces by ``index``, optionally interleaved between calls) and finish
  ``tool_calls``; Anthropic ``tool_use`` blocks with ``input_json_delta`` pieces and stop reason
  ``tool_use``. A length cut inside a call leaves its JSON incomplete (Anthropic: and the block without
  ``content_block_stop``);
* an OpenAI refusal (``delta.refusal``), and an Anthropic ``thinking`` block (``thinking_delta`` pieces,
  ``signature_delta``) before the text.

Requests may carry ``tools`` and earlier tool calls and results in either provider's format (list-shaped
content, ``tool`` messages, ``tool_use`` / ``tool_result`` blocks); they are recorded as sent and their
text counts as input. Without a queued scenario the reply is
``"Echo from {model}: {last user text}"``. ``ttft_ms`` and ``token_delay_ms`` on the server set the
delay before the first output token and between tokens (a tool call's argument piece or a thinking token
counts as one, see :class:`Scenario`). A connection refused for every request is not a scenario: tests
point the client at a closed port for that (:attr:`Scenario.drop_connection` resets one request's connection).

For soak tests the server can also fault requests at random (``fault_rate``, ``fault_seed``,
``fault_kinds``; see :class:`FakeUpstream` and :data:`FAULT_KINDS`): a streaming request with no queued
scenario then gets, with probability ``fault_rate``, a scenario for a randomly chosen fault kind, recorded in
``RecordedRequest.fault`` and counted in ``server.fault_counts``.

Every request is recorded in ``server.requests``; ``server.active_streams`` and ``server.disconnects``
tell whether the client is still reading or hung up mid-stream.

Run it in a background thread (``with FakeUpstream() as server: ...``), inside a running event loop
(``async with FakeUpstream() as server: ...``) or from the command line::

    python -m tests.fake_upstream --port 8100 --ttft-ms 200 --token-delay-ms 20 [--tokens N]
        [--fault-rate 0.1 --fault-seed 42 --fault-kinds status_500,reset --hang-limit-ms 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import random
import re
import signal
import socket
import string
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Literal

__all__ = [
    "FAULT_HANG_LIMIT_MS",
    "FAULT_KINDS",
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

Provider = Literal["openai", "anthropic"]
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
FaultKind = Literal[
    "status_500",
    "status_429",
    "drop_connection",
    "error_in_band",
    "close_early",
    "reset",
    "malformed",
    "hang_before_first_token",
    "hang_mid_stream",
]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "status_500",  # Scenario(status=500)
    "status_429",  # Scenario(status=429, retry_after=0)
    "drop_connection",  # Scenario(drop_connection=True)
    "error_in_band",  # Scenario(error_after_tokens=N): Anthropic overloaded_error, OpenAI server_error
    "close_early",  # Scenario(close_after_tokens=N)
    "reset",  # Scenario(reset_after_tokens=N)
    "malformed",  # Scenario(malformed_after_tokens=N)
    "hang_before_first_token",  # Scenario(hang_before_first_token=True, ping_while_hanging=True, hang_limit_ms=…)
    "hang_mid_stream",  # Scenario(hang_after_tokens=N, ping_while_hanging=True, hang_limit_ms=…)
)
"""Every kind of random fault (see :class:`FakeUpstream`), with the scenario each one gets. N is drawn
uniformly from 1 to the answer's number of output units (0 when it has none); the hang limit is the
server's ``hang_limit_ms``, or :data:`FAULT_HANG_LIMIT_MS` when that is None."""
FAULT_HANG_LIMIT_MS = 1000.0
"""How long a random hang fault lasts when the server has no ``hang_limit_ms``: a soak never hangs forever."""

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"

MAX_HEAD_BYTES = 64 * 1024
READ_SIZE = 64 * 1024
SYSTEM_FINGERPRINT = "fp_fake0upstream"
TOKENS_PER_MESSAGE = 4

_TOKEN_RE = re.compile(r"\S+\s*|\s+")
_WORD_RE = re.compile(r"\S+")

# Finish reasons in one provider's vocabulary, translated to the other's so a scenario can say either.
_TO_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_TO_OPENAI_FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls", "stop_sequence": "stop"}


# --------------------------------------------------------------------------------------------------
# Scripting and recording
# --------------------------------------------------------------------------------------------------


@dataclass
class FakeToolCall:
    """One tool (function) call in a scripted answer; see :attr:`Scenario.tool_calls`."""

    name: str
    """Function / tool name."""
    arguments: dict[str, Any] | str = field(default_factory=dict)
    """The call's input: a dict is sent as ``json.dumps(arguments, ensure_ascii=False)`` (default separators,
    non-ASCII characters unescaped); a str is sent verbatim, so it may be invalid or truncated JSON."""
    id: str | None = None
    """Call id (default: a realistic one generated per request, ``call_`` + 24 alphanumerics for OpenAI,
    ``toolu_01`` + 22 for Anthropic; deterministic for a given request id; see ``RecordedRequest.tool_call_ids``)."""

    @property
    def arguments_json(self) -> str:
        """The argument text exactly as the fake streams it (joined pieces)."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass
class Scenario:
    """How the fake answers one request. Every field is optional; unset fields take the defaults.

    Output is streamed in *output units*, each counted as one output token and paced like one: a reply
    token (text or refusal), a thinking token, or one piece of a tool call's argument JSON (the structural
    events around them, such as a tool call's header or a block start/stop, are not counted). Token
    counts (``*_after_tokens``, ``RecordedRequest.tokens_sent``, the default output usage, the request's
    ``max_tokens`` cut) all count output units: 0 means before the first one, the answer's length means
    after the last one but before the final events, more than that never happens.

    Order of an answer: thinking, then text (or refusal), then the tool calls in order.
    """

    provider: Provider | None = None
    """Only a request to this provider takes the scenario from the queue (None: the next request)."""

    text: str | None = None
    """Reply text, split into tokens on word boundaries (spaces kept). Like every reply, it is cut to the
    request's ``max_tokens`` / ``max_completion_tokens`` if longer, as the real APIs do. Without ``text``,
    ``tokens``, ``refusal`` and ``tool_calls`` the reply is :func:`default_reply`; with tool calls and no
    text there is no text at all (no Anthropic text block, OpenAI's first chunk has ``content: null``)."""
    tokens: list[str] | None = None
    """Explicit reply tokens (wins over ``text``)."""
    finish: str | None = None
    """Finish reason, e.g. "stop"/"length" (OpenAI) or "end_turn"/"max_tokens" (Anthropic); the common
    ones are translated, so either vocabulary works for both providers, and others (e.g. "content_filter",
    "refusal") are sent as given. Default: stop/end_turn (tool_calls/tool_use when there are tool calls;
    for a ``refusal``, stop on OpenAI and refusal on Anthropic), or length/max_tokens when the request's
    token limit cut the answer. "length"/"max_tokens" with ``tool_calls`` also cuts the answer inside the
    last call: only the first half (rounded down) of its argument pieces are sent, so its JSON never
    completes (a call whose JSON is a single piece is then not started at all)."""

    tool_calls: list[FakeToolCall] | None = None
    """Tool calls after the text. OpenAI: per call a delta ``{"tool_calls": [{"index": i, "id": "call_…",
    "type": "function", "function": {"name": …, "arguments": ""}}]}`` then one delta per argument piece
    carrying only ``index`` and ``function.arguments``. Anthropic: per call a ``tool_use`` block
    (``content_block_start`` with ``input: {}``, an empty ``input_json_delta`` as the real API often sends
    first, one ``input_json_delta`` per piece, ``content_block_stop``). An empty list means none."""
    split_arguments: int | None = 7
    """Split each call's argument JSON into pieces of this many UTF-8 bytes (anywhere, mid-token or
    mid-escape; a boundary inside a multi-byte character moves to that character's end, as a JSON string
    cannot carry half a character). None: the whole JSON in one piece. Each piece is one output unit
    (empty arguments make one empty piece)."""
    interleave_tool_calls: bool = False
    """OpenAI only: send the calls' pieces round-robin (call 0 piece 0, call 1 piece 0, call 0 piece 1, …;
    each call's header with its first piece), so a client must assemble them by ``index``. Anthropic
    blocks are always sequential."""
    refusal: str | None = None
    """The reply is a refusal with this text (replaces ``text``/``tokens``; not with ``tool_calls``).
    OpenAI streams it in ``delta.refusal`` (first chunk ``content: null, refusal: ""``), finish "stop";
    Anthropic streams it as text with stop reason "refusal"."""
    thinking: str | None = None
    """Reasoning before the reply, tokenized like ``text``. Anthropic: a ``thinking`` block first
    (``thinking_delta`` per token, then a ``signature_delta``, then ``content_block_stop``), the text block
    after it. OpenAI (whose Chat Completions API does not stream reasoning): nothing is sent for it, but
    its tokens take their time slots and count in ``completion_tokens`` and ``reasoning_tokens``."""

    input_tokens: int | None = None
    """OpenAI ``prompt_tokens`` / Anthropic ``input_tokens``, reported verbatim (default: input_token_count)."""
    output_tokens: int | None = None
    """Final output token count (default: the number of output units streamed, see above)."""
    cached_tokens: int = 0
    """OpenAI ``prompt_tokens_details.cached_tokens`` / Anthropic ``cache_read_input_tokens``."""
    cache_creation_tokens: int = 0
    """Anthropic ``cache_creation_input_tokens``."""

    drop_connection: bool = False
    """Read the request, then abort the TCP connection with a RST without sending a single response byte
    (what a client sees of a refused or reset connection, for this one request; also on a reused keep-alive
    connection). Streaming or not; outcome "dropped". openai 3.57 and anthropic 2.14 (``max_retries=0``)
    both raise their ``APIConnectionError`` ("Connection error.") from ``httpx2.ReadError`` (empty message;
    at the bottom of the chain ``ConnectionResetError(104, 'Connection reset by peer')``). With retries
    the SDKs retry it like any connection error."""
    hang_before_headers: bool = False
    """Read the request, then send nothing at all, not even the status line, until the client disconnects
    (outcome "client_disconnected") or the hang limit passes (see ``hang_limit_ms``): a server that accepts
    but never answers. Streaming or not (a streaming request counts in ``server.active_streams`` meanwhile).
    Without a hang limit only the client's read timeout or its own deadline ends the wait: both SDKs raise
    their ``APITimeoutError`` from ``httpx2.ReadTimeout`` (openai "Request timed out.", anthropic "Request
    timed out or interrupted. …")."""
    status: int | None = None
    """Answer with this HTTP error status and the provider's JSON error body instead of a stream."""
    retry_after: float | None = None
    """Value of the ``Retry-After`` header sent with ``status``."""
    error_type: str | None = None
    """Provider error type for ``status`` or the in-band error (default depends on status/provider)."""
    error_message: str | None = None
    """Error message for ``status`` or the in-band error."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers."""

    error_after_tokens: int | None = None
    """Send an in-band error event after N tokens, then end the stream (HTTP status stays 200)."""
    close_after_tokens: int | None = None
    """End the chunked body cleanly after N tokens, without finish/usage/[DONE]/message_stop, and close."""
    reset_after_tokens: int | None = None
    """Abort the TCP connection (RST) after N tokens."""
    malformed_after_tokens: int | None = None
    """After N tokens, send one SSE event whose JSON is cut off, then close the connection (FIN) without the
    chunked body's terminating zero-length chunk, as a proxy that lost its upstream mid-stream does. The
    event is the next delta's JSON, of the kind of the last unit sent (of the first unit when none was),
    cut right after the first three characters of its text, ``par``, and followed by the blank line that
    ends an event. OpenAI: ``data: {"id":"chatcmpl-…",…,"choices":[{"index":0,"delta":{"content":"par``
    (``refusal`` in a refusal, ``{"tool_calls":[{"index":i,"function":{"arguments":"par`` in a tool call)
    then ``\\n\\n``. Anthropic: ``event: content_block_delta`` / ``data: {"type":"content_block_delta",
    "index":i,"delta":{"type":"text_delta","text":"par`` (``thinking_delta``/``thinking``,
    ``input_json_delta``/``partial_json`` in those blocks) then ``\\n\\n``.
    Outcome "malformed". Both SDKs (openai 3.57, anthropic 2.14) parse each event with a bare ``json.loads``:
    a plain ``json.JSONDecodeError`` (a ``ValueError``, not an SDK ``APIError``) escapes the stream's
    iterator (and their ``.stream()`` helpers) as soon as the event arrives, e.g. Anthropic's "Unterminated
    string starting at: line 1 column 77 (char 76)". Non-streaming requests ignore it."""
    hang_before_first_token: bool = False
    """Send the stream's preamble, then nothing until the client disconnects (or the hang limit)."""
    hang_after_tokens: int | None = None
    """Send N tokens, then nothing until the client disconnects (or the hang limit)."""
    ping_while_hanging: bool = False
    """While hanging, Anthropic streams send a ``ping`` event every ``server.ping_interval_ms``
    (OpenAI has no keep-alive events and stays silent)."""
    hang_limit_ms: float | None = None
    """Longest any hang of this request lasts (None: ``server.hang_limit_ms``; both None: no limit). When
    it has passed with the client still there, the server closes the connection (FIN) with the response
    unfinished; outcome "hang_expired". Before the status line (``hang_before_headers``, or any hang of a
    non-streaming request) both SDKs raise ``APIConnectionError`` from ``httpx2.RemoteProtocolError``
    ("Server disconnected without sending a response."). In the stream, without the chunked body's
    terminating chunk: openai raises ``APIConnectionError`` from ``httpx2.RemoteProtocolError`` ("peer
    closed connection without sending complete message body (incomplete chunked read)"), anthropic lets
    that ``httpx2.RemoteProtocolError`` itself escape, unwrapped."""

    ttft_ms: float | None = None
    """Override of ``server.ttft_ms`` for this request."""
    token_delay_ms: float | None = None
    """Override of ``server.token_delay_ms`` for this request."""

    def __post_init__(self) -> None:
        if self.split_arguments is not None and self.split_arguments < 1:
            raise ValueError("split_arguments must be at least 1 (or None for a single piece)")
        if self.refusal is not None and (self.text is not None or self.tokens is not None or self.tool_calls):
            raise ValueError("refusal replaces text/tokens and cannot come with tool_calls")
        if self.drop_connection + self.hang_before_headers + (self.status is not None) > 1:
            raise ValueError("drop_connection, hang_before_headers and status exclude each other")
        if self.hang_limit_ms is not None and self.hang_limit_ms < 0:
            raise ValueError("hang_limit_ms must not be negative")

    def hang_point(self) -> int | None:
        """Number of tokens after which the stream hangs, if it does."""
        return 0 if self.hang_before_first_token else self.hang_after_tokens


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


# --------------------------------------------------------------------------------------------------
# Text helpers (public so tests can compute what the fake will answer)
# --------------------------------------------------------------------------------------------------


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


def input_token_count(body: Mapping[str, Any]) -> int:
    """Deterministic stand-in for the provider's input token count.

    Words of every message's text, plus ``TOKENS_PER_MESSAGE`` per message; Anthropic's top-level
    ``system`` prompt counts as one more message. A message's text is its string content or the text
    inside its content blocks: ``text`` parts, ``tool_result`` contents, ``tool_use`` inputs as JSON, and an
    OpenAI assistant message's ``tool_calls`` names and arguments (``tool`` messages are messages like any
    other). Tool definitions (``tools``) are not counted.
    """
    texts: list[str] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        texts.extend(_message_text(m) for m in messages if isinstance(m, dict))
    if body.get("system"):
        texts.append(_content_text(body["system"]))
    return sum(len(_WORD_RE.findall(text)) + TOKENS_PER_MESSAGE for text in texts)


def _provider_for_path(path: str) -> Provider | None:
    if path == OPENAI_PATH:
        return "openai"
    if path == ANTHROPIC_PATH:
        return "anthropic"
    return None


def _request_token_limit(provider: Provider, body: Mapping[str, Any]) -> int | None:
    keys = ("max_tokens",) if provider == "anthropic" else ("max_completion_tokens", "max_tokens")
    for key in keys:
        value = body.get(key)
        if isinstance(value, int) and value >= 0:
            return value
    return None


# --------------------------------------------------------------------------------------------------
# Wire dialects: what each provider's events, errors and bodies look like
# --------------------------------------------------------------------------------------------------


def _reason_phrase(status: int) -> str:
    """Reason phrase of a status line; Anthropic's non-standard 529 included."""
    if status == 529:
        return "Overloaded"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


_Unit = tuple[Literal["thinking", "text", "tool"], int, int]
"""One output unit of an answer: ("thinking", token index, 0), ("text", token index, 0) or
("tool", call index, piece index)."""

_CUT_MARK = "\x00cut"
"""Marks where :func:`_cut_json` cuts a malformed event's JSON (a string holding it is cut just before it)."""


def _cut_json(data: Any) -> str:
    """``data`` as JSON, cut off inside the string value that holds ``_CUT_MARK``, just before the mark."""
    text = _dumps(data)
    return text[: text.index(_dumps(_CUT_MARK)[1:-1])]


def _malformed_unit(schedule: list[_Unit], sent: int) -> _Unit:
    """The unit whose kind a malformed event takes: the last one sent, else the first (text if none)."""
    if sent > 0:
        return schedule[sent - 1]
    return schedule[0] if schedule else ("text", 0, 0)


@dataclass
class _PlannedCall:
    id: str
    name: str
    arguments: str
    """The whole argument text of the call."""
    pieces: list[str]
    """The argument pieces sent: all of them unless the answer was cut inside (or before) this call."""
    complete: bool = True
    """Every piece was sent."""

    @property
    def started(self) -> bool:
        return bool(self.pieces)


@dataclass
class _Answer:
    """Everything a dialect needs to render one answer. Token lists hold what is sent, after any cut."""

    request_id: str
    model: str
    body: Mapping[str, Any]
    tokens: list[str]
    finish: str
    input_tokens: int
    output_tokens: int | None
    cached_tokens: int
    cache_creation_tokens: int
    error_type: str | None
    error_message: str | None
    has_text: bool = True
    """The answer has a text part (possibly empty); False for tool calls without text."""
    refusal: bool = False
    """``tokens`` are a refusal."""
    has_thinking: bool = False
    thinking: list[str] = field(default_factory=list)
    tool_calls: list[_PlannedCall] = field(default_factory=list)
    schedule: list[_Unit] = field(default_factory=list)
    """The output units in the order they are sent."""
    cut: bool = False
    """The answer was cut short (by the request's token limit, or a scripted length finish inside a call)."""

    def default_output_tokens(self) -> int:
        return self.output_tokens if self.output_tokens is not None else len(self.schedule)


def _tool_call_id(provider: Provider, request_id: str, index: int) -> str:
    """A realistic tool call id, deterministic for one request and call."""
    rng = random.Random(f"{request_id}/{index}")
    alphabet = string.ascii_letters + string.digits
    if provider == "openai":
        return "call_" + "".join(rng.choices(alphabet, k=24))
    return "toolu_01" + "".join(rng.choices(alphabet, k=22))


class _OpenAIDialect:
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

    def __init__(self, answer: _Answer) -> None:
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
            status, ("server_error" if status >= 500 else "invalid_request_error", None, _reason_phrase(status))
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
        return f"data: {_dumps(self._chunk_data(choices, usage))}\n\n".encode()

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
                yield []  # Chat Completions does not stream reasoning: the unit only takes its time
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
        return f"data: {_dumps(body)}\n\n".encode()

    def malformed(self, sent: int) -> bytes:
        """The next chunk after ``sent`` units, its JSON cut off inside its text (see ``Scenario``)."""
        kind, index, _ = _malformed_unit(self.answer.schedule, sent)
        if kind == "tool":
            delta: dict[str, Any] = {"tool_calls": [{"index": index, "function": {"arguments": "par" + _CUT_MARK}}]}
        else:
            delta = {"refusal" if self.answer.refusal else "content": "par" + _CUT_MARK}
        return f"data: {_cut_json(self._chunk_data([self._choice(delta)]))}\n\n".encode()

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


_Block = tuple[Literal["thinking", "text", "tool"], int]


class _AnthropicDialect:
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

    def __init__(self, answer: _Answer) -> None:
        self.answer = answer
        self.message_id = "msg_" + answer.request_id.removeprefix("req_")
        digest = hashlib.sha256(f"{answer.request_id}:{''.join(answer.thinking)}".encode()).digest()
        self.signature = base64.b64encode(b"\x12\x08fake" + digest * 3).decode()
        # Content blocks, in order: thinking, text, one per tool call.
        self.blocks: list[_Block] = []
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
            status, ("api_error" if status >= 500 else "invalid_request_error", _reason_phrase(status))
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
        return f"event: {name}\ndata: {_dumps(data)}\n\n".encode()

    def _usage(self, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": self.answer.input_tokens,
            "cache_creation_input_tokens": self.answer.cache_creation_tokens,
            "cache_read_input_tokens": self.answer.cached_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.answer.cache_creation_tokens,
                "ephemeral_1h_input_tokens": 0,
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
        if kind == "thinking":
            block: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
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

    def _block_of(self, unit: _Unit) -> int:
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
        "thinking": ("thinking_delta", "thinking"),
        "text": ("text_delta", "text"),
        "tool": ("input_json_delta", "partial_json"),
    }

    def malformed(self, sent: int) -> bytes:
        """A ``content_block_delta`` for the open block after ``sent`` units, its JSON cut off inside its text."""
        index = self._block_of(self.answer.schedule[sent - 1]) if sent > 0 else 0
        delta_type, key = self._CUT_DELTAS[self.blocks[index][0] if self.blocks else "text"]
        data = {"type": "content_block_delta", "index": index, "delta": {"type": delta_type, key: "par" + _CUT_MARK}}
        return f"event: content_block_delta\ndata: {_cut_json(data)}\n\n".encode()

    def finale(self, output_tokens: int) -> list[bytes]:
        usage = {
            "input_tokens": self.answer.input_tokens,
            "cache_creation_input_tokens": self.answer.cache_creation_tokens,
            "cache_read_input_tokens": self.answer.cached_tokens,
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
            if kind == "thinking":
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


_Dialect = _OpenAIDialect | _AnthropicDialect


def _error_body(provider: Provider, status: int, error_type: str | None, message: str | None, request_id: str) -> Any:
    if provider == "anthropic":
        return _AnthropicDialect.error_body(status, error_type, message, request_id)
    return _OpenAIDialect.error_body(status, error_type, message)


# --------------------------------------------------------------------------------------------------
# HTTP/1.1 on asyncio streams
# --------------------------------------------------------------------------------------------------


class _BadRequest(Exception):
    """The bytes received are not an HTTP/1.1 request we can parse."""


class _ClientGone(Exception):
    """The client closed the connection."""


@dataclass
class _HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        return "close" not in self.headers.get("connection", "").lower()


class _HttpConnection:
    """One client connection: buffered request parsing, chunked responses, disconnect detection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()
        self.eof = False

    async def _fill(self) -> bool:
        """Read more bytes into the buffer; False at end of stream."""
        if self.eof:
            return False
        try:
            data = await self.reader.read(READ_SIZE)
        except ConnectionError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    async def watch_eof(self) -> None:
        """Return when the client closes its side (bytes it sends meanwhile are kept for the next request)."""
        while await self._fill():
            pass

    async def _read_until(self, marker: bytes, limit: int) -> bytes:
        while (index := self.buffer.find(marker)) < 0:
            if len(self.buffer) > limit:
                raise _BadRequest("request head too large")
            if not await self._fill():
                raise _ClientGone
        end = index + len(marker)
        data = bytes(self.buffer[:end])
        del self.buffer[:end]
        return data

    async def _read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not await self._fill():
                raise _ClientGone
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def _read_chunked_body(self) -> bytes:
        body = bytearray()
        while True:
            size_line = await self._read_until(b"\r\n", MAX_HEAD_BYTES)
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError as err:
                raise _BadRequest("bad chunk size") from err
            if size == 0:
                while await self._read_until(b"\r\n", MAX_HEAD_BYTES) != b"\r\n":
                    pass  # trailers, ignored
                return bytes(body)
            body += await self._read_exactly(size)
            if await self._read_exactly(2) != b"\r\n":
                raise _BadRequest("bad chunk terminator")

    async def read_request(self) -> _HttpRequest | None:
        """The next request on the connection, or None when the client closed it between requests."""
        while not self.buffer:
            if not await self._fill():
                return None
        head = (await self._read_until(b"\r\n\r\n", MAX_HEAD_BYTES)).decode("latin-1")
        request_line, *header_lines = head.rstrip("\r\n").split("\r\n")
        try:
            method, target, version = request_line.split(" ")
        except ValueError as err:
            raise _BadRequest(f"bad request line {request_line!r}") from err
        if not version.startswith("HTTP/1."):
            raise _BadRequest(f"unsupported version {version!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(f"bad header line {line!r}")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if headers.get("expect", "").lower() == "100-continue":
            await self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked_body()
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError as err:
                raise _BadRequest("bad content-length") from err
            body = await self._read_exactly(length)
        return _HttpRequest(method=method, path=target.split("?", 1)[0], headers=headers, body=body)

    async def write(self, data: bytes) -> None:
        """Write and drain at once, so each piece leaves promptly; _ClientGone if the client is gone."""
        if self.writer.is_closing():
            raise _ClientGone
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as err:
            raise _ClientGone from err

    @staticmethod
    def _head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
        lines = [f"HTTP/1.1 {status} {_reason_phrase(status)}", f"Date: {formatdate(usegmt=True)}"]
        lines += [f"{name}: {value}" for name, value in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send_json(self, status: int, body: Any, headers: Mapping[str, str], keep_alive: bool) -> None:
        payload = json.dumps(body).encode()
        all_headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("Connection", "keep-alive" if keep_alive else "close"),
            *headers.items(),
        ]
        await self.write(self._head(status, all_headers) + payload)

    async def start_event_stream(self, headers: Mapping[str, str]) -> None:
        all_headers = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "keep-alive"),
            ("Cache-Control", "no-cache"),
            *headers.items(),
        ]
        await self.write(self._head(200, all_headers))

    async def send_chunk(self, data: bytes) -> None:
        await self.write(b"%x\r\n%s\r\n" % (len(data), data))

    async def end_chunks(self) -> None:
        await self.write(b"0\r\n\r\n")

    def reset(self) -> None:
        """Abort the TCP connection with a RST (SO_LINGER 0), not a FIN."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def _conclude(record: RecordedRequest, outcome: Outcome) -> None:
    """Record how an answer ended. Called just *before* the bytes that show it to the client, so that a
    test which has seen the end of the answer also sees the outcome."""
    record.outcome, record.ended_at = outcome, time.monotonic()


class _StopConnection(Exception):
    """The response ended in a way that leaves the connection unusable (closed or reset)."""


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class FakeUpstream:
    """Fake OpenAI + Anthropic streaming server; see the module docstring.

    Knobs (plain attributes, read at each request, safe to set from any thread): ``ttft_ms``,
    ``token_delay_ms``, ``default_tokens`` (make the default reply exactly N tokens long),
    ``ping_interval_ms``, ``hang_limit_ms`` (longest a hang lasts unless its scenario says otherwise; None:
    until the client goes away), and for random faults ``fault_rate`` (the probability, from 0 to 1, that
    a streaming request with no queued scenario gets a fault) and ``fault_kinds`` (the kinds drawn from,
    uniformly; see :data:`FAULT_KINDS`). The faults are drawn from a ``random.Random(fault_seed)``, seeded
    at construction and reseeded by :meth:`reset` (setting ``fault_seed`` later changes nothing), so a seed
    and the same order of requests give the same faults; non-streaming requests are never faulted.
    Observations: ``requests``, ``active_streams`` (streaming requests being answered, also while hanging
    before the status line; and its ``peak_active_streams``), ``disconnects`` (clients that hung up
    mid-answer, or before any response byte), ``connections`` (TCP connections accepted) and
    ``fault_counts`` (random faults given, by kind).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ttft_ms: float = 0.0,
        token_delay_ms: float = 0.0,
        default_tokens: int | None = None,
        ping_interval_ms: float = 100.0,
        hang_limit_ms: float | None = None,
        fault_rate: float = 0.0,
        fault_seed: int | None = None,
        fault_kinds: tuple[FaultKind, ...] = FAULT_KINDS,
    ) -> None:
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        if unknown := set(fault_kinds) - set(FAULT_KINDS):
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if fault_rate > 0 and not fault_kinds:
            raise ValueError("a fault_rate needs fault_kinds")
        self.host = host
        self.port = port
        self.ttft_ms = ttft_ms
        self.token_delay_ms = token_delay_ms
        self.default_tokens = default_tokens
        self.ping_interval_ms = ping_interval_ms
        self.hang_limit_ms = hang_limit_ms
        self.fault_rate = fault_rate
        self.fault_seed = fault_seed
        self.fault_kinds = tuple(fault_kinds)
        self._initial_knobs = (ttft_ms, token_delay_ms, default_tokens, ping_interval_ms, hang_limit_ms)
        self._initial_faults = (fault_rate, fault_seed, self.fault_kinds)

        self.requests: list[RecordedRequest] = []
        self.active_streams = 0
        self.peak_active_streams = 0
        self.disconnects = 0
        self.connections = 0
        self.fault_counts: Counter[FaultKind] = Counter()
        self._faults = random.Random(fault_seed)

        self._scenarios: deque[Scenario] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ---- URLs ------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    # ---- scripting -------------------------------------------------------------------------------

    def enqueue(self, *scenarios: Scenario) -> None:
        """Queue scenarios; each is taken by the next request to its provider (any provider if None)."""
        with self._lock:
            self._scenarios.extend(scenarios)

    def pending_scenarios(self) -> list[Scenario]:
        with self._lock:
            return list(self._scenarios)

    def reset(self) -> None:
        """Forget queued scenarios, recorded requests and counters; restore the constructor's knobs and
        fault settings, and reseed the faults (the same seed gives the same faults again)."""
        with self._lock:
            self._scenarios.clear()
            self.fault_rate, self.fault_seed, self.fault_kinds = self._initial_faults
            self._faults.seed(self.fault_seed)
            self.fault_counts.clear()
        self.requests.clear()
        self.disconnects = 0
        self.connections = 0
        self.peak_active_streams = self.active_streams
        (self.ttft_ms, self.token_delay_ms, self.default_tokens, self.ping_interval_ms, self.hang_limit_ms) = (
            self._initial_knobs
        )

    def _take_scenario(self, provider: Provider) -> Scenario | None:
        with self._lock:
            for scenario in self._scenarios:
                if scenario.provider in (None, provider):
                    self._scenarios.remove(scenario)
                    return scenario
        return None

    def _draw_fault(self) -> tuple[FaultKind, float] | None:
        """Whether this request gets a random fault: its kind and where in the answer (0 <= position < 1)."""
        with self._lock:
            if self._faults.random() >= self.fault_rate or not self.fault_kinds:
                return None
            kind = self._faults.choice(self.fault_kinds)
            self.fault_counts[kind] += 1
            return kind, self._faults.random()

    def _fault_scenario(self, kind: FaultKind, position: float, n_units: int) -> Scenario:
        """The scenario of a random fault (see :data:`FAULT_KINDS`) in an answer of ``n_units`` output units."""
        point = min(1 + int(position * n_units), n_units)
        hang_limit_ms = self.hang_limit_ms if self.hang_limit_ms is not None else FAULT_HANG_LIMIT_MS
        match kind:
            case "status_500":
                return Scenario(status=500)
            case "status_429":
                return Scenario(status=429, retry_after=0)
            case "drop_connection":
                return Scenario(drop_connection=True)
            case "error_in_band":
                return Scenario(error_after_tokens=point)
            case "close_early":
                return Scenario(close_after_tokens=point)
            case "reset":
                return Scenario(reset_after_tokens=point)
            case "malformed":
                return Scenario(malformed_after_tokens=point)
            case "hang_before_first_token":
                return Scenario(hang_before_first_token=True, ping_while_hanging=True, hang_limit_ms=hang_limit_ms)
            case "hang_mid_stream":
                return Scenario(hang_after_tokens=point, ping_while_hanging=True, hang_limit_ms=hang_limit_ms)
        raise ValueError(f"unknown fault kind {kind!r}")

    def _scenario_for(
        self, provider: Provider, body: dict[str, Any], stream: bool, request_id: str
    ) -> tuple[Scenario, FaultKind | None]:
        """The request's scenario: the next one queued for its provider, else a random fault, else the default."""
        scenario = self._take_scenario(provider)
        if scenario is not None:
            return scenario, None
        drawn = self._draw_fault() if stream else None
        if drawn is None:
            return Scenario(), None
        kind, position = drawn
        n_units = len(self._plan_answer(provider, body, Scenario(), request_id).schedule)
        return self._fault_scenario(kind, position, n_units), kind

    # ---- waiting (for assertions) ----------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0, interval: float = 0.005) -> bool:
        """Poll ``predicate`` from any event loop until it is true; False if still false after ``within`` s."""
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(interval)
        return True

    def wait_until_sync(self, predicate: Callable[[], bool], within: float = 5.0, interval: float = 0.005) -> bool:
        """Blocking variant of :meth:`wait_until` for synchronous tests."""
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
        return True

    async def wait_for_disconnects(self, count: int = 1, within: float = 5.0) -> bool:
        """Wait until the server has seen ``count`` clients hang up mid-answer (False after ``within`` s)."""
        return await self.wait_until(lambda: self.disconnects >= count, within)

    # ---- lifecycle inside a running loop ---------------------------------------------------------

    async def start_async(self) -> None:
        """Start listening in the running event loop (binds a free port when ``port`` is 0)."""
        self._server = await asyncio.start_server(self._handle_connection, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop_async(self) -> None:
        """Stop listening, close every connection (answers in progress end as "server_stopped")."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start_async()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_async()

    # ---- lifecycle in a background thread --------------------------------------------------------

    def start(self) -> FakeUpstream:
        """Run the server in a background thread with its own event loop; returns once it listens."""
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as err:  # reported to the starting thread
                failure.append(err)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"fake-upstream-{id(self):x}", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection, stop the loop and join the thread."""
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop_async(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = self._loop = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- connections -----------------------------------------------------------------------------

    async def _handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.connections += 1
        conn = _HttpConnection(reader, writer)
        try:
            while True:
                try:
                    request = await conn.read_request()
                except _BadRequest as err:
                    await conn.send_json(400, {"error": {"message": str(err)}}, {}, keep_alive=False)
                    break
                if request is None:
                    break
                await self._respond(conn, request)
                if not request.keep_alive:
                    break
        except (_ClientGone, _StopConnection):
            pass
        except asyncio.CancelledError:
            # stop_async() cancels the connection tasks. This task is the top of its connection, so it ends
            # normally: Python 3.11's streams call task.exception() on it, which raises if it was cancelled.
            pass
        finally:
            self._connections.discard(task)
            await conn.close()

    async def _respond(self, conn: _HttpConnection, http: _HttpRequest) -> None:
        provider = _provider_for_path(http.path)
        try:
            body: Any = json.loads(http.body) if http.body else None
        except ValueError:
            body = None
        record = RecordedRequest(
            provider=provider,
            method=http.method,
            path=http.path,
            headers=dict(http.headers),
            json=body,
            received_at=time.monotonic(),
            stream=isinstance(body, dict) and body.get("stream") is True,
        )
        self.requests.append(record)
        request_id = f"req_fake{next(self._ids):06d}"
        error_shape: Provider = provider or ("anthropic" if "anthropic-version" in http.headers else "openai")
        id_header = {"request-id" if error_shape == "anthropic" else "x-request-id": request_id}

        async def fail(status: int, message: str) -> None:
            record.status = status
            _conclude(record, "error_status")
            error = _error_body(error_shape, status, None, message, request_id)
            await conn.send_json(status, error, id_header, http.keep_alive)

        if provider is None or http.method != "POST":
            await fail(404, f"Invalid URL ({http.method} {http.path})")
            return
        if not isinstance(body, dict):
            await fail(400, "We could not parse the JSON body of your request.")
            return

        scenario, record.fault = self._scenario_for(provider, body, record.stream, request_id)
        record.scenario = scenario

        if scenario.drop_connection:
            _conclude(record, "dropped")
            conn.reset()
            raise _StopConnection
        if scenario.status is not None:
            headers = {**id_header, **scenario.headers}
            if scenario.retry_after is not None:
                headers["retry-after"] = f"{scenario.retry_after:g}"
            error = _error_body(provider, scenario.status, scenario.error_type, scenario.error_message, request_id)
            record.status = scenario.status
            _conclude(record, "error_status")
            await conn.send_json(scenario.status, error, headers, http.keep_alive)
            return

        answer = self._plan_answer(provider, body, scenario, request_id)
        record.tool_call_ids = [call.id for call in answer.tool_calls]
        dialect: _Dialect = _OpenAIDialect(answer) if provider == "openai" else _AnthropicDialect(answer)
        if record.stream:
            self.active_streams += 1
            self.peak_active_streams = max(self.peak_active_streams, self.active_streams)
            try:
                await self._race_disconnect(conn, record, self._stream(conn, record, dialect, scenario))
            finally:
                self.active_streams -= 1
        else:
            await self._race_disconnect(
                conn, record, self._reply_json(conn, record, dialect, scenario, http.keep_alive)
            )

    def _plan_answer(self, provider: Provider, body: dict[str, Any], scenario: Scenario, request_id: str) -> _Answer:
        scripted_calls = scenario.tool_calls or []
        if scenario.refusal is not None:
            tokens = tokenize(scenario.refusal)
        elif scenario.tokens is not None:
            tokens = list(scenario.tokens)
        elif scenario.text is not None:
            tokens = tokenize(scenario.text)
        elif scripted_calls:
            tokens = []
        else:
            tokens = tokenize(default_reply(body))
            if self.default_tokens is not None:
                tokens = list(itertools.islice(itertools.cycle(tokens or ["token "]), self.default_tokens))
        has_text = not scripted_calls or scenario.text is not None or scenario.tokens is not None
        thinking = tokenize(scenario.thinking) if scenario.thinking is not None else []
        calls = [
            _PlannedCall(
                id=call.id or _tool_call_id(provider, request_id, index),
                name=call.name,
                arguments=call.arguments_json,
                pieces=argument_pieces(call.arguments_json, scenario.split_arguments),
            )
            for index, call in enumerate(scripted_calls)
        ]

        schedule: list[_Unit] = [("thinking", i, 0) for i in range(len(thinking))]
        schedule += [("text", i, 0) for i in range(len(tokens))]
        if provider == "openai" and scenario.interleave_tool_calls:
            rounds = max((len(call.pieces) for call in calls), default=0)
            schedule += [("tool", c, p) for p in range(rounds) for c, call in enumerate(calls) if p < len(call.pieces)]
        else:
            schedule += [("tool", c, p) for c, call in enumerate(calls) for p in range(len(call.pieces))]

        if scenario.refusal is not None:
            finish = scenario.finish or ("refusal" if provider == "anthropic" else "stop")
        else:
            finish = scenario.finish or ("tool_calls" if calls else "stop")
        cut = False
        limit = _request_token_limit(provider, body)
        if limit is not None and len(schedule) > limit:
            schedule, cut = schedule[:limit], True
            finish = scenario.finish or "length"
        elif calls and finish in ("length", "max_tokens"):
            # A scripted length finish with tool calls: cut inside the last call, half of its pieces sent.
            last = len(calls) - 1
            schedule, cut = schedule[: schedule.index(("tool", last, len(calls[last].pieces) // 2))], True

        sent = {kind: 0 for kind in ("thinking", "text")}
        sent_pieces = [0] * len(calls)
        for kind, index, _ in schedule:
            if kind == "tool":
                sent_pieces[index] += 1
            else:
                sent[kind] += 1
        for call, n_sent in zip(calls, sent_pieces, strict=True):
            call.complete = n_sent == len(call.pieces)
            call.pieces = call.pieces[:n_sent]
        return _Answer(
            request_id=request_id,
            model=str(body.get("model", "")),
            body=body,
            tokens=tokens[: sent["text"]],
            finish=finish,
            input_tokens=scenario.input_tokens if scenario.input_tokens is not None else input_token_count(body),
            output_tokens=scenario.output_tokens,
            cached_tokens=scenario.cached_tokens,
            cache_creation_tokens=scenario.cache_creation_tokens,
            error_type=scenario.error_type,
            error_message=scenario.error_message,
            has_text=has_text,
            refusal=scenario.refusal is not None,
            has_thinking=scenario.thinking is not None,
            thinking=thinking[: sent["thinking"]],
            tool_calls=calls,
            schedule=schedule,
            cut=cut,
        )

    async def _race_disconnect(
        self, conn: _HttpConnection, record: RecordedRequest, answer: Coroutine[Any, Any, None]
    ) -> None:
        """Run an answer coroutine while watching for the client hanging up; cancel the answer if it does."""
        answering = asyncio.ensure_future(answer)
        watching = asyncio.ensure_future(conn.watch_eof())
        try:
            await asyncio.wait({answering, watching}, return_when=asyncio.FIRST_COMPLETED)
            if not answering.done():
                answering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await answering
                raise _ClientGone
            answering.result()  # re-raises _ClientGone / _StopConnection
        except _ClientGone:
            _conclude(record, "client_disconnected")
            self.disconnects += 1
            raise
        except asyncio.CancelledError:
            if record.outcome == "pending":
                _conclude(record, "server_stopped")
            raise
        finally:
            for task in (answering, watching):
                task.cancel()
            await asyncio.gather(answering, watching, return_exceptions=True)

    def _delays(self, scenario: Scenario) -> tuple[float, float]:
        """This request's (ttft_ms, token_delay_ms): the scenario's overrides, else the server's knobs."""
        ttft_ms = scenario.ttft_ms if scenario.ttft_ms is not None else self.ttft_ms
        token_delay_ms = scenario.token_delay_ms if scenario.token_delay_ms is not None else self.token_delay_ms
        return ttft_ms, token_delay_ms

    async def _pause(self, ms: float) -> None:
        if ms > 0:
            await asyncio.sleep(ms / 1000)

    @staticmethod
    async def _sleep_until(deadline: float) -> None:
        """Sleep until a ``time.monotonic()`` deadline (the event loop's clock too); no-op if it has passed."""
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _hang(
        self, conn: _HttpConnection, record: RecordedRequest, scenario: Scenario, ping: bytes | None = None
    ) -> None:
        """Send nothing (or only ``ping`` chunks) until cancelled by the client's disconnect or the server's
        stop; or, once the hang limit has passed, conclude "hang_expired" and leave the connection to close."""
        limit_ms = scenario.hang_limit_ms if scenario.hang_limit_ms is not None else self.hang_limit_ms

        async def silence() -> None:
            while ping is not None:
                await self._pause(self.ping_interval_ms)
                await conn.send_chunk(ping)
            await asyncio.Event().wait()

        try:
            await asyncio.wait_for(silence(), None if limit_ms is None else limit_ms / 1000)
        except TimeoutError:
            _conclude(record, "hang_expired")
            raise _StopConnection from None

    async def _stream(
        self, conn: _HttpConnection, record: RecordedRequest, dialect: _Dialect, scenario: Scenario
    ) -> None:
        answer = dialect.answer
        ttft_ms, token_delay_ms = self._delays(scenario)
        hang_at = scenario.hang_point()
        fault_points = {
            scenario.error_after_tokens,
            scenario.close_after_tokens,
            scenario.reset_after_tokens,
            scenario.malformed_after_tokens,
            hang_at,
        }

        if scenario.hang_before_headers:
            await self._hang(conn, record, scenario)
        record.status = 200
        await conn.start_event_stream({**dialect.response_headers(), **scenario.headers})
        for event in dialect.preamble():
            await conn.send_chunk(event)

        steps = dialect.steps()
        n_units = len(answer.schedule)
        for sent in range(n_units + 1):
            if sent < n_units or sent in fault_points:
                # Token k is due ttft + k * delay after the request came in: a late token does not delay the
                # next ones, so the stream keeps its nominal duration even when the process is busy.
                await self._sleep_until(record.received_at + (ttft_ms + sent * token_delay_ms) / 1000)
            if sent == hang_at:
                await self._hang(conn, record, scenario, dialect.ping() if scenario.ping_while_hanging else None)
            if sent == scenario.error_after_tokens:
                _conclude(record, "error_in_band")
                await conn.send_chunk(dialect.in_band_error())
                await conn.end_chunks()
                return
            if sent == scenario.close_after_tokens:
                _conclude(record, "closed_early")
                await conn.end_chunks()
                raise _StopConnection
            if sent == scenario.reset_after_tokens:
                _conclude(record, "reset")
                conn.reset()
                raise _StopConnection
            if sent == scenario.malformed_after_tokens:
                _conclude(record, "malformed")
                await conn.send_chunk(dialect.malformed(sent))
                raise _StopConnection  # closed without the terminating chunk
            if sent < n_units:
                events = next(steps)
                record.tokens_sent = sent + 1
                if record.first_token_at is None and events:
                    record.first_token_at = time.monotonic()
                for event in events:
                    await conn.send_chunk(event)

        for event in dialect.finale(answer.default_output_tokens()):
            await conn.send_chunk(event)
        _conclude(record, "completed")
        await conn.end_chunks()

    async def _reply_json(
        self, conn: _HttpConnection, record: RecordedRequest, dialect: _Dialect, scenario: Scenario, keep_alive: bool
    ) -> None:
        """Minimal non-streaming answer: waits as long as the stream would take, then one JSON body. Any hang
        of the scenario happens before the status line; faults inside the stream do not apply."""
        answer = dialect.answer
        if scenario.hang_before_headers or scenario.hang_point() is not None:
            await self._hang(conn, record, scenario)
        ttft_ms, token_delay_ms = self._delays(scenario)
        units = len(answer.schedule)
        await self._sleep_until(record.received_at + (ttft_ms + token_delay_ms * max(units - 1, 0)) / 1000)
        headers = {**dialect.response_headers(), **scenario.headers}
        record.tokens_sent = units
        record.status = 200
        _conclude(record, "completed")
        await conn.send_json(200, dialect.complete_body(answer.default_output_tokens()), headers, keep_alive)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    server = FakeUpstream(
        args.host,
        args.port,
        ttft_ms=args.ttft_ms,
        token_delay_ms=args.token_delay_ms,
        default_tokens=args.tokens,
        hang_limit_ms=args.hang_limit_ms,
        fault_rate=args.fault_rate,
        fault_seed=args.fault_seed,
        fault_kinds=args.fault_kinds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        print(
            f"fake upstream listening: openai_base_url={server.openai_base_url} "
            f"anthropic_base_url={server.anthropic_base_url}",
            flush=True,
        )
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_upstream", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100, help="0 picks a free port")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="delay before the first content token")
    parser.add_argument("--token-delay-ms", type=float, default=0.0, help="delay between tokens")
    parser.add_argument("--tokens", type=int, default=None, help="make the default reply exactly N tokens long")
    parser.add_argument(
        "--hang-limit-ms", type=float, default=None, help="longest a hang lasts (default: until the client leaves)"
    )
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="probability that a streaming request gets a random fault"
    )
    parser.add_argument("--fault-seed", type=int, default=None, help="seed of the random faults")
    parser.add_argument(
        "--fault-kinds",
        type=_fault_kinds,
        default=FAULT_KINDS,
        help=f"comma-separated kinds to draw from (default: all of {','.join(FAULT_KINDS)})",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.fault_rate <= 1.0:
        parser.error("--fault-rate must be between 0 and 1")
    asyncio.run(_serve(args))


def _fault_kinds(text: str) -> tuple[FaultKind, ...]:
    """Parse ``--fault-kinds``: comma-separated names from :data:`FAULT_KINDS`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if unknown := [name for name in names if name not in FAULT_KINDS]:
        raise argparse.ArgumentTypeError(f"unknown fault kinds: {', '.join(unknown)}")
    return tuple(kind for kind in FAULT_KINDS if kind in names)


if __name__ == "__main__":
    main()
