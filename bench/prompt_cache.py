"""Prompt caching on the complex route, measured: the input tokens and cost of one 10-turn conversation with
Anthropic prompt caching on (``PAM_ANTHROPIC_PROMPT_CACHE``), then the same conversation with it off.

Each turn is one real answer through the gateway (``pam_hybrid.gateway.stream.AnswerStream``: context from the
database, the tools on offer, the Anthropic provider through the official SDK) against the fake upstream in a
thread of this process, on 127.0.0.1. The fake scripts the answers' text (the same in both runs, from a fixed
seed) and reports the input as its model of Anthropic's documented caching rules does (fake_upstream/
prompt_cache.py: prefixes up to each ``cache_control`` breakpoint, the 20-block lookback, the model's minimum
cacheable length, 5-minute and 1-hour lifetimes; tokens counted by its word rule, fake_upstream/text.py). The real
API is out of reach here, so the figures are that model's, not Anthropic's bills. Each call is priced as the
gateway records it (``pam_hybrid.pricing.call_cost``: the shipped prices.toml and any overrides).

A temporary SQLite database is migrated for the run (or ``DATABASE_URL``'s, left as it was but for one user and
its conversations). Run from the repository root::

    .venv/bin/python bench/prompt_cache.py [--turns 10] [--ttl 5m|1h] [--model claude-sonnet-5-5] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORDS = (
    "cache", "prefix", "token", "model", "answer", "request", "stream", "context", "history", "system", "tool",
    "latency", "cost", "price", "input", "output", "window", "budget", "provider", "gateway", "retry", "breaker",
    "database", "record", "usage", "minute", "hour", "write", "read", "block", "turn", "user", "assistant",
    "question", "detail", "example", "reason", "because", "therefore", "however", "also", "which", "where", "when",
)


def prose(rng: random.Random, words: int) -> str:
    sentences, left = [], words
    while left > 0:
        n = min(left, rng.randint(8, 16))
        sentence = " ".join(rng.choice(WORDS) for _ in range(n))
        sentences.append(sentence[0].upper() + sentence[1:] + ".")
        left -= n
    return " ".join(sentences)


@dataclass
class Turn:
    input_tokens: int
    cache_read: int
    cache_write_5m: int
    cache_write_1h: int
    output_tokens: int
    cost_usd: Decimal | None


def setup_django() -> None:
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pam_project.settings")
    if "DATABASE_URL" not in os.environ:
        os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='pam-prompt-cache-')}/bench.sqlite3"
    import django

    django.setup()
    logging.getLogger("pam_hybrid.answers").disabled = True  # one JSON line per answer: not this report's
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


async def conversation(user: Any, turns: int, seed: int, upstream: Any) -> list[Turn]:
    """One conversation of ``turns`` questions on the complex route; one row per model call."""
    from asgiref.sync import sync_to_async

    from fake_upstream import Scenario
    from pam_hybrid.gateway.stream import AnswerStream, ChatRequest
    from pam_hybrid.pricing import refresh_overrides

    await sync_to_async(refresh_overrides)()
    rng = random.Random(seed)
    rows: list[Turn] = []
    conversation_id: str | None = None
    for _ in range(turns):
        upstream.enqueue(Scenario(provider="anthropic", text=prose(rng, rng.randint(150, 260))))
        stream = AnswerStream(ChatRequest(user=user, content=prose(rng, rng.randint(30, 80)),
                                          conversation_id=conversation_id, route="complex"))
        async for chunk in stream.chunks():
            if chunk.chunk_type == "error":
                raise SystemExit(f"the answer failed: {chunk.content}")
        assert stream.answer is not None
        conversation_id = str(stream.answer.conversation_id)
        await stream.saved if stream.saved is not None else None
        for call in stream.answer.calls:
            usage = call.usage
            rows.append(Turn(usage.uncached_input_tokens, usage.cached_input_tokens, usage.cache_write_5m_tokens,
                             usage.cache_write_1h_tokens, usage.output_tokens, call.cost_usd))
    return rows


def total(values: list[Decimal | None]) -> Decimal | None:
    return None if any(v is None for v in values) else sum((v for v in values if v is not None), Decimal(0))


def show(label: str, rows: list[Turn]) -> dict[str, Any]:
    print(f"\n{label}")
    print(f"{'turn':>4} {'input':>7} {'cache read':>10} {'write 5m':>9} {'write 1h':>9} {'output':>7} {'cost USD':>12}")
    for i, r in enumerate(rows, 1):
        print(f"{i:>4} {r.input_tokens:>7} {r.cache_read:>10} {r.cache_write_5m:>9} {r.cache_write_1h:>9} "
              f"{r.output_tokens:>7} {r.cost_usd!s:>12}")
    sums = {key: sum(getattr(r, key) for r in rows)
            for key in ("input_tokens", "cache_read", "cache_write_5m", "cache_write_1h", "output_tokens")}
    cost = total([r.cost_usd for r in rows])
    print(f"{'all':>4} {sums['input_tokens']:>7} {sums['cache_read']:>10} {sums['cache_write_5m']:>9} "
          f"{sums['cache_write_1h']:>9} {sums['output_tokens']:>7} {cost!s:>12}")
    return {**sums, "cost_usd": None if cost is None else str(cost), "calls": len(rows)}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from asgiref.sync import sync_to_async
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from fake_upstream import FakeUpstream

    settings.PAM_COMPLEX_MODEL = args.model
    settings.PAM_ANTHROPIC_CACHE_TTL = args.ttl
    settings.PAM_RETRIES = 0
    results: dict[str, Any] = {"model": args.model, "ttl": args.ttl, "turns": args.turns}
    async with FakeUpstream() as upstream:
        settings.ANTHROPIC_API_KEY = settings.OPENAI_API_KEY = "bench-key"
        settings.ANTHROPIC_BASE_URL = upstream.anthropic_base_url
        settings.OPENAI_BASE_URL = upstream.openai_base_url
        user_model = get_user_model()
        user, _ = await sync_to_async(user_model.objects.get_or_create)(username="prompt-cache-bench")
        for label, cached in (("caching on", True), ("caching off", False)):
            upstream.reset()
            settings.PAM_ANTHROPIC_PROMPT_CACHE = cached
            rows = await conversation(user, args.turns, args.seed, upstream)
            results[label] = show(f"{label} ({args.model}, {args.turns} turns, ttl {args.ttl})", rows)
    on, off = results["caching on"]["cost_usd"], results["caching off"]["cost_usd"]
    if on is not None and off is not None and Decimal(off) > 0:
        saving = (Decimal(off) - Decimal(on)) / Decimal(off) * 100
        results["saving_percent"] = f"{saving:.1f}"
        print(f"\ncost with caching {on} USD, without {off} USD: {saving:.1f}% saved")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--ttl", choices=("5m", "1h"), default="5m")
    parser.add_argument("--model", default="claude-sonnet-5-5")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    setup_django()
    results = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
