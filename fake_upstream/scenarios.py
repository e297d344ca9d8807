"""What a request asks of the fake: scripted replies, tool calls, faults, and the random faults of a soak."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Provider = Literal["openai", "anthropic"]
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
    "status_529",
    "retry_after_429",
    "hang_before_headers",
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
    "status_529",  # Scenario(status=529): Anthropic's overloaded_error (OpenAI gets the same status, server_error)
    "retry_after_429",  # Scenario(status=429, retry_after=FAULT_RETRY_AFTER_S)
    "hang_before_headers",  # Scenario(hang_before_headers=True, hang_limit_ms=…)
)
"""Every kind of random fault (see :class:`FakeUpstream`), with the scenario each one gets. N is drawn
uniformly from 1 to the answer's number of output units (0 when it has none); the hang limit is the
server's ``hang_limit_ms``, or :data:`FAULT_HANG_LIMIT_MS` when that is None."""
FAULT_HANG_LIMIT_MS = 1000.0
"""How long a random hang fault lasts when the server has no ``hang_limit_ms``: a soak never hangs forever."""
FAULT_RETRY_AFTER_S = 1.0
"""The ``Retry-After`` of a random ``retry_after_429`` fault: long enough that a client that honours it is seen to."""


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
    its tokens take their time slots and count in ``completion_tokens`` and ``reasoning_tokens``, unless
    ``reasoning_field`` streams them as an OpenAI-compatible server does."""
    redacted_thinking: bool = False
    """Anthropic only: a ``redacted_thinking`` block first (its encrypted ``data`` whole in its
    ``content_block_start``, no deltas, then ``content_block_stop``), before any ``thinking`` block. It sends no
    output unit and takes no time slot."""
    reasoning_field: Literal["reasoning_content", "reasoning"] | None = None
    """OpenAI only: stream each thinking token as ``delta.<reasoning_field>`` (``reasoning_content``: vLLM,
    DeepSeek; ``reasoning``: Ollama, OpenRouter), the other delta fields absent, as OpenAI-compatible servers
    that expose reasoning do."""

    input_tokens: int | None = None
    """OpenAI ``prompt_tokens`` / Anthropic ``input_tokens``, reported verbatim (default: input_token_count, or for
    an Anthropic request with ``cache_control`` breakpoints the part the prompt cache neither read nor wrote, see
    fake_upstream.prompt_cache). Scripting it, ``cached_tokens`` or ``cache_creation_tokens`` leaves the prompt
    cache out of this request."""
    output_tokens: int | None = None
    """Final output token count (default: the number of output units streamed, see above)."""
    cached_tokens: int = 0
    """OpenAI ``prompt_tokens_details.cached_tokens`` / Anthropic ``cache_read_input_tokens``."""
    cache_creation_tokens: int = 0
    """Anthropic ``cache_creation_input_tokens``, all of it 5-minute writes unless ``cache_write_1h_tokens``."""
    cache_write_1h_tokens: int = 0
    """The part of ``cache_creation_tokens`` written with a one-hour TTL: ``usage.cache_creation`` then reports
    ``ephemeral_1h_input_tokens`` = this and ``ephemeral_5m_input_tokens`` = the rest."""

    def scripts_input_usage(self) -> bool:
        """Whether the scenario sets the input counts itself (the prompt cache then plays no part)."""
        return self.input_tokens is not None or bool(self.cached_tokens or self.cache_creation_tokens)

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
        if not 0 <= self.cache_write_1h_tokens <= self.cache_creation_tokens:
            raise ValueError("cache_write_1h_tokens is a part of cache_creation_tokens")

    def hang_point(self) -> int | None:
        """Number of tokens after which the stream hangs, if it does."""
        return 0 if self.hang_before_first_token else self.hang_after_tokens


def fault_settings_check(fault_rate: float, fault_kinds: tuple[FaultKind, ...]) -> None:
    """ValueError unless the random fault settings make sense (see FakeUpstream)."""
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError("fault_rate must be between 0 and 1")
    if unknown := set(fault_kinds) - set(FAULT_KINDS):
        raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
    if fault_rate > 0 and not fault_kinds:
        raise ValueError("a fault_rate needs fault_kinds")


def fault_scenario(kind: FaultKind, position: float, n_units: int, hang_limit_ms: float | None) -> Scenario:
    """The scenario of a random fault (see :data:`FAULT_KINDS`) at ``position`` (0 <= position < 1) in an answer
    of ``n_units`` output units; ``hang_limit_ms`` is the server's (None: :data:`FAULT_HANG_LIMIT_MS`)."""
    point = min(1 + int(position * n_units), n_units)
    hang_limit_ms = hang_limit_ms if hang_limit_ms is not None else FAULT_HANG_LIMIT_MS
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
        case "status_529":
            return Scenario(status=529)
        case "retry_after_429":
            return Scenario(status=429, retry_after=FAULT_RETRY_AFTER_S)
        case "hang_before_headers":
            return Scenario(hang_before_headers=True, hang_limit_ms=hang_limit_ms)
    raise ValueError(f"unknown fault kind {kind!r}")
