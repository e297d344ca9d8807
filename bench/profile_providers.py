"""What reading a provider's stream costs this process, per answer and per token, against the fake upstream.

Each provider streams answers of a few tokens and of many (the fake sends them with no pacing, from a thread of its
own) through its real `stream()`: the SDK makes the request, the provider reads the events. The CPU time of the
calling thread only (`time.thread_time`, so the fake's work is left out) gives, by the difference between the two
lengths, the CPU per token event and, by what is left, the CPU per call. 127.0.0.1 only; bounded by --answers.

    .venv/bin/python bench/profile_providers.py            # both providers, 200 answers each
    .venv/bin/python bench/profile_providers.py --answers 50 --tokens 400
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fake_upstream import FakeUpstream  # noqa: E402

SHORT_TOKENS = 1


async def _cpu_per_answer(provider_name: str, answers: int) -> float:
    """Seconds of this thread's CPU per streamed answer (the fake's `default_tokens` sets its length)."""
    from pam_hybrid.conf import pam_settings
    from pam_hybrid.domain.chunks import ChatTurn
    from pam_hybrid.providers.base import ModelRequest
    from pam_hybrid.providers.registry import get_provider

    provider = get_provider(provider_name)
    request = ModelRequest(model="bench-model", turns=(ChatTurn("user", "Tell me something."),), max_output_tokens=4096)
    settings = pam_settings()
    for _ in range(5):  # warm: the client, its connection pool, the first-call imports
        async for _event in provider.stream(request, settings):
            pass
    started = time.thread_time()
    for _ in range(answers):
        async for _event in provider.stream(request, settings):
            pass
    return (time.thread_time() - started) / answers


async def _both_lengths(fake: FakeUpstream, provider_name: str, answers: int, tokens: int) -> tuple[float, float]:
    # One event loop for both: the SDK clients are cached per loop, with their connections.
    fake.default_tokens = SHORT_TOKENS
    short = await _cpu_per_answer(provider_name, answers)
    fake.default_tokens = tokens
    return short, await _cpu_per_answer(provider_name, answers)


def measure(providers: list[str], *, answers: int = 200, tokens: int = 200) -> dict[str, tuple[float, float]]:
    """Per provider, (µs of CPU per call without its tokens, µs per token event), against a fake of our own."""
    fake = FakeUpstream().start()
    os.environ.update(OPENAI_API_KEY="bench", OPENAI_BASE_URL=fake.openai_base_url,
                      ANTHROPIC_API_KEY="bench", ANTHROPIC_BASE_URL=fake.anthropic_base_url)
    try:
        _setup_django()
        return {name: _split(*asyncio.run(_both_lengths(fake, name, answers, tokens)), tokens) for name in providers}
    finally:
        fake.stop()


def _split(short: float, long: float, tokens: int) -> tuple[float, float]:
    per_token = (long - short) / (tokens - SHORT_TOKENS)
    return (short - per_token * SHORT_TOKENS) * 1e6, per_token * 1e6


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pam_project.settings")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("SECRET_KEY", "bench-only-" + os.urandom(16).hex())
    import django

    django.setup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=200, help="answers per provider and length (200)")
    parser.add_argument("--tokens", type=int, default=200, help="tokens in a long answer (200)")
    parser.add_argument("--provider", choices=("openai", "anthropic"), action="append",
                        help="only this provider (repeatable; default both)")
    args = parser.parse_args()
    print(f"CPU of the provider's calling thread, {args.answers} answers of {SHORT_TOKENS} and of {args.tokens} "
          "tokens each (the fake upstream in another thread, unpaced)")
    print(f"{'provider':<10} {'µs per call':>12} {'µs per token':>13}")
    for name, (per_call, per_token) in measure(args.provider or ["openai", "anthropic"], answers=args.answers,
                                               tokens=args.tokens).items():
        print(f"{name:<10} {per_call:12.0f} {per_token:13.1f}")


if __name__ == "__main__":
    main()
