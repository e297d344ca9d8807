"""One answer planned from a request and its scenario: its tokens, thinking and tool calls, in the order they are
sent and cut to the request's token limit; what each dialect renders."""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fake_upstream.prompt_cache import CacheUsage
from fake_upstream.scenarios import Provider, Scenario
from fake_upstream.text import argument_pieces, default_reply, input_token_count, tokenize

Unit = tuple[Literal["thinking", "text", "tool"], int, int]
"""One output unit of an answer: ("thinking", token index, 0), ("text", token index, 0) or
("tool", call index, piece index)."""


@dataclass
class PlannedCall:
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
class Answer:
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
    redacted_thinking: bool = False
    """Anthropic: a ``redacted_thinking`` block comes first."""
    thinking: list[str] = field(default_factory=list)
    tool_calls: list[PlannedCall] = field(default_factory=list)
    schedule: list[Unit] = field(default_factory=list)
    """The output units in the order they are sent."""
    cut: bool = False
    """The answer was cut short (by the request's token limit, or a scripted length finish inside a call)."""
    cache_write_1h_tokens: int = 0
    """The part of ``cache_creation_tokens`` written with a one-hour TTL."""
    reasoning_field: str | None = None
    """OpenAI: the delta field that streams the thinking tokens (None: they are not streamed)."""

    def default_output_tokens(self) -> int:
        return self.output_tokens if self.output_tokens is not None else len(self.schedule)


def malformed_unit(schedule: list[Unit], sent: int) -> Unit:
    """The unit whose kind a malformed event takes: the last one sent, else the first (text if none)."""
    if sent > 0:
        return schedule[sent - 1]
    return schedule[0] if schedule else ("text", 0, 0)


def tool_call_id(provider: Provider, request_id: str, index: int) -> str:
    """A realistic tool call id, deterministic for one request and call."""
    rng = random.Random(f"{request_id}/{index}")
    alphabet = string.ascii_letters + string.digits
    if provider == "openai":
        return "call_" + "".join(rng.choices(alphabet, k=24))
    return "toolu_01" + "".join(rng.choices(alphabet, k=22))


def request_token_limit(provider: Provider, body: Mapping[str, Any]) -> int | None:
    keys = ("max_tokens",) if provider == "anthropic" else ("max_completion_tokens", "max_tokens")
    for key in keys:
        value = body.get(key)
        if isinstance(value, int) and value >= 0:
            return value
    return None


def plan_answer(
    provider: Provider,
    body: dict[str, Any],
    scenario: Scenario,
    request_id: str,
    default_tokens: int | None,
    cache: CacheUsage | None = None,
) -> Answer:
    """The answer to one request as scripted by ``scenario`` (``default_tokens``: the server's knob; ``cache``:
    what the prompt cache read and wrote for it, used unless the scenario scripts the input counts)."""
    scripted_calls = scenario.tool_calls or []
    tokens = _reply_tokens(body, scenario, default_tokens)
    has_text = not scripted_calls or scenario.text is not None or scenario.tokens is not None
    thinking = tokenize(scenario.thinking) if scenario.thinking is not None else []
    calls = [
        PlannedCall(
            id=call.id or tool_call_id(provider, request_id, index),
            name=call.name,
            arguments=call.arguments_json,
            pieces=argument_pieces(call.arguments_json, scenario.split_arguments),
        )
        for index, call in enumerate(scripted_calls)
    ]
    schedule = _schedule(provider, scenario, thinking, tokens, calls)
    schedule, finish, cut = _cut(provider, body, scenario, calls, schedule)

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
    if cache is not None and not scenario.scripts_input_usage():
        input_counts = (cache.input_tokens, cache.cache_read_input_tokens, cache.cache_creation_input_tokens,
                        cache.cache_write_1h_tokens)
    else:
        input_counts = (scenario.input_tokens if scenario.input_tokens is not None else input_token_count(body),
                        scenario.cached_tokens, scenario.cache_creation_tokens, scenario.cache_write_1h_tokens)
    return Answer(
        request_id=request_id,
        model=str(body.get("model", "")),
        body=body,
        tokens=tokens[: sent["text"]],
        finish=finish,
        input_tokens=input_counts[0],
        output_tokens=scenario.output_tokens,
        cached_tokens=input_counts[1],
        cache_creation_tokens=input_counts[2],
        cache_write_1h_tokens=input_counts[3],
        reasoning_field=scenario.reasoning_field if provider == "openai" else None,
        error_type=scenario.error_type,
        error_message=scenario.error_message,
        has_text=has_text,
        refusal=scenario.refusal is not None,
        has_thinking=scenario.thinking is not None,
        redacted_thinking=scenario.redacted_thinking and provider == "anthropic",
        thinking=thinking[: sent["thinking"]],
        tool_calls=calls,
        schedule=schedule,
        cut=cut,
    )


def _reply_tokens(body: Mapping[str, Any], scenario: Scenario, default_tokens: int | None) -> list[str]:
    """The reply's tokens before any cut: the refusal's, the scripted ones, none beside tool calls, or the default."""
    if scenario.refusal is not None:
        return tokenize(scenario.refusal)
    if scenario.tokens is not None:
        return list(scenario.tokens)
    if scenario.text is not None:
        return tokenize(scenario.text)
    if scenario.tool_calls:
        return []
    tokens = tokenize(default_reply(body))
    if default_tokens is not None:
        tokens = list(itertools.islice(itertools.cycle(tokens or ["token "]), default_tokens))
    return tokens


def _schedule(
    provider: Provider, scenario: Scenario, thinking: list[str], tokens: list[str], calls: list[PlannedCall]
) -> list[Unit]:
    """Every output unit in the order it is sent: thinking, text, then the calls' pieces (OpenAI: maybe interleaved)."""
    schedule: list[Unit] = [("thinking", i, 0) for i in range(len(thinking))]
    schedule += [("text", i, 0) for i in range(len(tokens))]
    if provider == "openai" and scenario.interleave_tool_calls:
        rounds = max((len(call.pieces) for call in calls), default=0)
        schedule += [("tool", c, p) for p in range(rounds) for c, call in enumerate(calls) if p < len(call.pieces)]
    else:
        schedule += [("tool", c, p) for c, call in enumerate(calls) for p in range(len(call.pieces))]
    return schedule


def _cut(
    provider: Provider, body: Mapping[str, Any], scenario: Scenario, calls: list[PlannedCall], schedule: list[Unit]
) -> tuple[list[Unit], str, bool]:
    """The units actually sent, the finish reason, and whether the answer was cut short."""
    if scenario.refusal is not None:
        finish = scenario.finish or ("refusal" if provider == "anthropic" else "stop")
    else:
        finish = scenario.finish or ("tool_calls" if calls else "stop")
    limit = request_token_limit(provider, body)
    if limit is not None and len(schedule) > limit:
        return schedule[:limit], scenario.finish or "length", True
    if calls and finish in ("length", "max_tokens"):
        # A scripted length finish with tool calls: cut inside the last call, half of its pieces sent.
        last = len(calls) - 1
        return schedule[: schedule.index(("tool", last, len(calls[last].pieces) // 2))], finish, True
    return schedule, finish, False
