"""How long a token estimate takes: a 6,000-token context (system prompt, the app's tools, history with tool calls
and results), per provider, after the encodings are loaded; and how long loading them takes, once per process.

    .venv/bin/python bench/tokens.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pam_hybrid.domain.chunks import ChatTurn, ToolCall, ToolResult
from pam_hybrid.providers.base import ModelRequest, ToolSpec
from pam_hybrid.providers.encodings import get_encoding
from pam_hybrid.providers.tokens import estimate_input_tokens, estimate_output_tokens

ROUNDS = 200
PARAGRAPH = (
    "The gateway routes each question to a cheap or a capable model, retries a failed call once, falls back to "
    "the other provider when a breaker is open, and records what every call cost in tokens and dollars. "
)
TOOLS = tuple(
    ToolSpec(f"tool_{i}", "Looks something up for the user, e.g. a past conversation or the time in a city.", {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "What to look for.", "maxLength": 200},
                       "limit": {"type": "integer", "description": "How many.", "minimum": 1, "maximum": 20}},
        "required": ["query"], "additionalProperties": False,
    })
    for i in range(4)
)


def context(target_tokens: int) -> ModelRequest:
    """Turns added until the o200k count of their text passes the target."""
    encoding = get_encoding("o200k_base")
    turns: list[ChatTurn] = []
    used = 0
    while used < target_tokens:
        call = ToolCall(f"call_{len(turns)}", "tool_0", json.dumps({"query": "sourdough starter", "limit": 5}))
        result = ToolResult(call.call_id, "tool_0", True, json.dumps({"matches": [PARAGRAPH] * 2}), 3.0)
        turns += [ChatTurn("user", PARAGRAPH * 3), ChatTurn("assistant", "", tool_calls=(call,)),
                  ChatTurn("tool", tool_results=(result,)), ChatTurn("assistant", PARAGRAPH * 4)]
        used += len(encoding.encode_ordinary(PARAGRAPH * 9 + call.arguments_json + result.content))
    turns.append(ChatTurn("user", "And what about rye flour?"))
    return ModelRequest(model="", turns=tuple(turns), max_output_tokens=1024,
                        system="You are PAM, a careful assistant. " * 20, tools=TOOLS)


def main() -> None:
    for name in ("o200k_base", "cl100k_base"):
        start = time.perf_counter()
        get_encoding(name)
        print(f"load {name}: {(time.perf_counter() - start) * 1000:.0f} ms (once per process)")
    request = context(6000)
    answer = PARAGRAPH * 30
    print(f"\nestimate of a ~6,000-token context, {ROUNDS} calls each, milliseconds")
    print(f"{'provider / model':<32} {'tokens':>7} {'median':>7} {'p99':>7}   output ({len(answer)} chars)")
    for provider, model in (("openai", "gpt-4o-mini"), ("openai", "gpt-4"), ("anthropic", "claude-sonnet-5-5"),
                            ("anthropic", "claude-sonnet-4-5")):
        samples = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            tokens = estimate_input_tokens(provider, model, request)
            samples.append((time.perf_counter() - start) * 1000)
        samples.sort()
        out_start = time.perf_counter()
        output = estimate_output_tokens(provider, model, answer)
        out_ms = (time.perf_counter() - out_start) * 1000
        print(f"{provider + ' ' + model:<32} {tokens:>7} {statistics.median(samples):7.2f} "
              f"{samples[int(len(samples) * 0.99) - 1]:7.2f}   {output} tokens, {out_ms:.2f} ms")


if __name__ == "__main__":
    main()
