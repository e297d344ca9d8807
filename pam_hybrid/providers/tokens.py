"""Token estimates for a call the provider never reported usage for (abandoned, cut or failed after acceptance).

Everything sent is counted, serialised as each provider's module sends it: system prompt, tool definitions,
every turn's text, the assistant's tool calls and the tool results.

OpenAI: exact text counts with tiktoken (encodings shipped in `encodings`, never downloaded), framed as OpenAI's
cookbook "How to count tokens with tiktoken" counts chat messages (3 tokens per message, 1 more for a `name`,
3 to prime the reply) and tools (7 tokens per function on o200k models, 10 on older ones, 3 to open the
properties, 3 per property, enum items 3 each less 3, 12 to close the list). The cookbook counts a property
as "name:type:description"; other schema keywords (defaults, limits, nested schemas) are counted as compact
JSON here, which errs high.

Anthropic publishes no tokenizer for its current models, so its counts are calibrated, erring high: the o200k
count times a factor for the model's tokenizer family (see `ClaudeTokenizer`), plus framing. The calibration:
- Anthropic's guidance on counting (its Claude Code token-counting reference): tiktoken undercounts Claude tokens
  by about 15–20% on typical text, more on code and non-English text. Its legacy tokenizer (the `tokenizer.json`
  its SDK shipped up to 0.38) gives 0.99× o200k on this repo's prose and 1.13× on its code (worst file 1.31×;
  bench/claude_ratio.py). Older family (Claude 2, 3, 4 up to 4.6): 1.2 × the code premium 1.13 = 1.356,
  rounded up to 1.36.
- Anthropic says the newer tokenizer (Opus 4.7 and later, Fable, the 5 series) makes roughly 30% more tokens;
  a published measurement against its count_tokens endpoint found +59% on English prose, +34% on minified JSON
  and +15.6% on Python over the older family. Newer family: 1.2 × 1.59 = 1.91, rounded up to 1.95. A Claude model
  this module does not know is taken to be of the newer family (the higher estimate).
- Framing: a one-character message counts 8 tokens by count_tokens (7 of framing); block framing is a guess.
Tool definitions add the tool-use system prompt Anthropic documents (346 tokens for the Claude 4 models with
tool_choice auto or none), scaled by the prose premium (×1.59) on the newer family, which is not documented.

A provider with no rule here (the built-in offline model, one added later) is counted as the newer Claude family
without a tool prompt: erring high, and never zero for something sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tiktoken import Encoding

from pam_hybrid.domain.chunks import ToolCall
from pam_hybrid.providers import anthropic_messages, openai_chat
from pam_hybrid.providers.base import ModelRequest, ToolSpec
from pam_hybrid.providers.encodings import DEFAULT_ENCODING, encoding_name_for_model, get_encoding

# OpenAI cookbook, "How to count tokens with tiktoken".
OPENAI_PER_MESSAGE = 3
OPENAI_PER_NAME = 1
OPENAI_REPLY_PRIMING = 3
OPENAI_FUNCTION_INIT = {"o200k_base": 7, "cl100k_base": 10}
OPENAI_PROPERTIES_INIT = 3
OPENAI_PER_PROPERTY = 3
OPENAI_ENUM_INIT = -3
OPENAI_PER_ENUM_ITEM = 3
OPENAI_FUNCTIONS_END = 12
_COOKBOOK_PROPERTY_KEYS = frozenset({"type", "description", "enum"})
# Rendered as the properties' optional marks, or not at all, by the cookbook's count.
_COOKBOOK_SCHEMA_KEYS = frozenset({"type", "properties", "required", "additionalProperties"})


@dataclass(frozen=True, slots=True)
class ClaudeTokenizer:
    """A family of Claude tokenizers: Claude tokens per o200k token (erring high) and its tool-use system prompt."""

    name: str
    per_o200k: float
    tool_prompt: int


CLAUDE_OLDER = ClaudeTokenizer("older", per_o200k=1.36, tool_prompt=346)
CLAUDE_NEWER = ClaudeTokenizer("newer", per_o200k=1.95, tool_prompt=551)
# Model-name prefixes (the longest that matches wins); any other model is taken to use the newer tokenizer.
CLAUDE_TOKENIZERS = {
    "claude-instant": CLAUDE_OLDER, "claude-2": CLAUDE_OLDER, "claude-3": CLAUDE_OLDER,
    "claude-opus-4": CLAUDE_OLDER, "claude-sonnet-4": CLAUDE_OLDER, "claude-haiku-4": CLAUDE_OLDER,
    "claude-opus-4-7": CLAUDE_NEWER, "claude-opus-4-8": CLAUDE_NEWER,
}
# A provider with no rule here counts like this, without a tool prompt.
UNKNOWN_TOKENIZER = ClaudeTokenizer("unknown", per_o200k=CLAUDE_NEWER.per_o200k, tool_prompt=0)
# From a one-character message's count (8); per block not documented.
ANTHROPIC_PER_MESSAGE = 4
ANTHROPIC_PER_BLOCK = 3
ANTHROPIC_REPLY_PRIMING = 3


def _count(encoding: Encoding, text: str) -> int:
    # Special-token text in a conversation is ordinary text to the API: encode_ordinary never refuses it.
    return len(encoding.encode_ordinary(text)) if text else 0


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _strings(value: Any) -> Iterator[str]:
    """Every string value inside a message (keys are the format's framing, counted by the per-message rate)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _openai_tool(encoding: Encoding, spec: ToolSpec) -> int:
    tokens = OPENAI_FUNCTION_INIT.get(encoding.name, OPENAI_FUNCTION_INIT[DEFAULT_ENCODING])
    tokens += _count(encoding, f"{spec.name}:{spec.description.removesuffix('.')}")
    properties = spec.parameters.get("properties") or {}
    if properties:
        tokens += OPENAI_PROPERTIES_INIT
    for name, schema in properties.items():
        tokens += OPENAI_PER_PROPERTY
        schema = schema if isinstance(schema, dict) else {}
        kind = schema.get("type")
        kind_text = kind if isinstance(kind, str) else _compact(kind) if kind is not None else ""
        description = str(schema.get("description", "")).removesuffix(".")
        tokens += _count(encoding, f"{name}:{kind_text}:{description}")
        if isinstance(schema.get("enum"), list):
            tokens += OPENAI_ENUM_INIT
            tokens += sum(OPENAI_PER_ENUM_ITEM + _count(encoding, str(item)) for item in schema["enum"])
        rest = {key: value for key, value in schema.items() if key not in _COOKBOOK_PROPERTY_KEYS}
        if rest:
            tokens += _count(encoding, _compact(rest))
    rest = {key: value for key, value in spec.parameters.items() if key not in _COOKBOOK_SCHEMA_KEYS}
    if rest:
        tokens += _count(encoding, _compact(rest))
    return tokens


def _openai_messages(encoding: Encoding, messages: Sequence[Mapping[str, Any]]) -> int:
    """Chat messages with the cookbook's framing, the reply's priming included."""
    tokens = OPENAI_REPLY_PRIMING
    for message in messages:
        tokens += OPENAI_PER_MESSAGE + sum(_count(encoding, text) for text in _strings(message))
        if "name" in message:
            tokens += OPENAI_PER_NAME
    return tokens


def _openai_input(model: str, request: ModelRequest) -> int:
    encoding = get_encoding(encoding_name_for_model(model))
    tokens = _openai_messages(encoding, openai_chat._messages(request))
    if request.tools:
        tokens += sum(_openai_tool(encoding, spec) for spec in request.tools) + OPENAI_FUNCTIONS_END
    return tokens


def claude_tokenizer(model: str) -> ClaudeTokenizer:
    """The tokenizer family of a Claude model, by the longest matching name prefix (the newer one if none)."""
    matches = [prefix for prefix in CLAUDE_TOKENIZERS if model.startswith(prefix)]
    return CLAUDE_TOKENIZERS[max(matches, key=len)] if matches else CLAUDE_NEWER


def _calibrated(tokenizer: ClaudeTokenizer, texts: Sequence[str]) -> int:
    encoding = get_encoding(DEFAULT_ENCODING)
    return math.ceil(sum(_count(encoding, text) for text in texts) * tokenizer.per_o200k)


def _block_texts(block: dict[str, Any]) -> tuple[str, ...]:
    kind = block.get("type")
    if kind == "text":
        return (block.get("text", ""),)
    if kind == "tool_use":
        return (block["id"], block["name"], _compact(block.get("input", {})))
    if kind == "tool_result":
        return (block["tool_use_id"], str(block.get("content", "")))
    return (_compact(block),)


def _anthropic_parts(request: ModelRequest) -> tuple[list[str], int]:
    """The texts the Anthropic module sends for this request, and the (guessed) framing tokens around them."""
    texts = [request.system, *(_compact(tool) for tool in anthropic_messages._tools(request.tools))]
    framing = ANTHROPIC_REPLY_PRIMING
    for message in anthropic_messages.alternating_turns(request.turns):
        framing += ANTHROPIC_PER_MESSAGE
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
            continue
        for block in content:
            framing += ANTHROPIC_PER_BLOCK
            texts.extend(_block_texts(dict(block)))
    return texts, framing


def _calibrated_input(tokenizer: ClaudeTokenizer, request: ModelRequest) -> int:
    texts, framing = _anthropic_parts(request)
    return _calibrated(tokenizer, texts) + framing + (tokenizer.tool_prompt if request.tools else 0)


def _anthropic_input(model: str, request: ModelRequest) -> int:
    return _calibrated_input(claude_tokenizer(model), request)


def _other_input(model: str, request: ModelRequest) -> int:
    return _calibrated_input(UNKNOWN_TOKENIZER, request)


def _openai_output(model: str, text: str) -> int:
    return _count(get_encoding(encoding_name_for_model(model)), text)


def _anthropic_output(model: str, text: str) -> int:
    return _calibrated(claude_tokenizer(model), [text])


def _other_output(model: str, text: str) -> int:
    return _calibrated(UNKNOWN_TOKENIZER, [text])


_INPUT: dict[str, Callable[[str, ModelRequest], int]] = {"openai": _openai_input, "anthropic": _anthropic_input}
_OUTPUT: dict[str, Callable[[str, str], int]] = {"openai": _openai_output, "anthropic": _anthropic_output}


def estimate_input_tokens(provider: str, model: str, request: ModelRequest) -> int:
    """The input tokens this request is billed for, estimated from everything it sends."""
    return _INPUT.get(provider, _other_input)(model, request)


def estimate_output_tokens(
    provider: str, model: str, text: str, tool_calls: Sequence[ToolCall] = (), thinking: str = ""
) -> int:
    """The output tokens of what a call produced before it ended: its text, tool calls (name and arguments)
    and thinking text, estimated as the provider would count them."""
    count = _OUTPUT.get(provider, _other_output)
    pieces = [thinking, text, *(piece for call in tool_calls for piece in (call.name, call.arguments_json))]
    return sum(count(model, piece) for piece in pieces if piece)


def warm(models: Iterable[str] = ()) -> None:
    """Load the encodings estimates will use (o200k_base and those of these models) ahead of the first estimate:
    about 0.3 s each, once per process, better spent in a worker thread than on the event loop."""
    for name in {DEFAULT_ENCODING, *(encoding_name_for_model(model) for model in models)}:
        get_encoding(name)
