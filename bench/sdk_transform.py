"""What the OpenAI SDK's walk over a request's typed parameters costs, the work `providers/openai_chat.py` skips by
sending its (already plain JSON) body as `extra_body`.

`openai._utils._transform.async_maybe_transform` is what `chat.completions.create` runs on its parameters before
building the request; this times it on the body the provider sends (a system prompt, then N turns of about 40
words) in this thread's CPU, best and median of five batches. The Anthropic SDK runs no such walk on
`messages.create`, so its provider passes its parameters as they are. In process; no network.

    .venv/bin/python bench/sdk_transform.py [--turns 1 10 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from openai._utils._transform import async_maybe_transform
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming

BATCH = 300


def body(turns: int) -> dict[str, Any]:
    messages = [{"role": "system", "content": "You are PAM."}]
    messages += [{"role": "user" if i % 2 == 0 else "assistant", "content": "word " * 40} for i in range(turns)]
    return {"messages": messages, "model": "gpt-4o-mini", "max_tokens": 1024, "stream": True,
            "stream_options": {"include_usage": True}}


async def cost_us(turns: int) -> tuple[float, float]:
    """(best, median) µs of CPU per walk over five batches."""
    params = body(turns)
    for _ in range(50):
        await async_maybe_transform(params, CompletionCreateParamsStreaming)
    batches = []
    for _ in range(5):
        started = time.thread_time()
        for _ in range(BATCH):
            await async_maybe_transform(params, CompletionCreateParamsStreaming)
        batches.append((time.thread_time() - started) / BATCH * 1e6)
    return min(batches), statistics.median(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[1, 10, 30], help="conversation lengths (1 10 30)")
    args = parser.parse_args()
    print("CPU of the OpenAI SDK's parameter walk per request (skipped by sending the body as extra_body)")
    print(f"{'turns':>5} {'best µs':>9} {'median µs':>10}")
    for turns in args.turns:
        best, median = asyncio.run(cost_us(turns))
        print(f"{turns:5d} {best:9.0f} {median:10.0f}")


if __name__ == "__main__":
    main()
