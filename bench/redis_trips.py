"""Redis work before the upstream call: what one message's admission costs on Redis, the old way (claim, limits and
breaker one after another: three round trips) against the one script (`pam_hybrid.runtime.preflight`).

In-process, against the Redis at ``REDIS_URL`` (127.0.0.1 only; default ``redis://127.0.0.1:6379/0``), under a
``PAM_REDIS_PREFIX`` of its own whose keys are deleted at the end. No database: the day's spend is put in Redis
first, as the first message of a user's day does. Per message it times, on this process's clock, the admission
of a fresh ``client_msg_id`` on the ``auto`` route (the router's choice included in the new way, which makes it up
front) up to the permit the upstream call needs, and counts the round trips (commands sent; nothing is pipelined),
then ends it the way each path ends an answer (not timed). ``--messages`` one after another, then the same number
from ``--concurrency`` tasks at once, each way in turn; ``--rounds`` repeats the lot (the best round of each is
printed too: on a shared host the spread between rounds is noise).

Run from the repository root: ``REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/redis_trips.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pam_project.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = f"pam-bench:{uuid.uuid4().hex}:"
os.environ["PAM_REDIS_PREFIX"] = PREFIX

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from redis.asyncio.connection import AbstractConnection  # noqa: E402

from pam_hybrid.breakers.wiring import provider_breaker  # noqa: E402
from pam_hybrid.conf import pam_settings  # noqa: E402
from pam_hybrid.gateway.stream import ChatRequest  # noqa: E402
from pam_hybrid.redis_client import redis_client  # noqa: E402
from pam_hybrid.runtime import claims, limits, preflight  # noqa: E402

QUESTION = "What is the capital of France?"
_sent = 0
_send = AbstractConnection.send_packed_command


async def _counted(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
    global _sent
    _sent += 1
    await _send(self, command, check_health)


AbstractConnection.send_packed_command = _counted  # type: ignore[method-assign]

Way = Callable[[ChatRequest], Awaitable[float]]


async def _old(request: ChatRequest) -> float:
    """Before: the claim, the limits, then the first provider's breaker, each a round trip."""
    s = pam_settings()
    breaker = provider_breaker()
    started = time.perf_counter()
    await claims.claim(request.user, request.client_msg_id, request.message_id)
    await limits.admit(request.user.pk, request.message_id, s)
    permit = await breaker.acquire("openai")
    elapsed = time.perf_counter() - started
    assert permit is not None
    await breaker.success(permit)
    await limits.release(request.user.pk, request.message_id, None)
    return elapsed


async def _new(request: ChatRequest) -> float:
    """Now: one script; the answer's end is one more (its place, its cost and its breaker's success)."""
    s = pam_settings()
    breaker = provider_breaker()
    started = time.perf_counter()
    checked = await preflight.check(request, s)
    await breaker.hold_ahead(checked.ahead)
    permit = await breaker.acquire("openai")
    elapsed = time.perf_counter() - started
    assert permit is not None and checked.ahead is not None and checked.ahead.used
    await breaker.success(permit)
    await preflight.settle(request.user.pk, request.message_id, limits.spend_of(None), breaker=breaker,
                           ahead=checked.ahead)
    return elapsed


def _request(user: Any) -> ChatRequest:
    return ChatRequest(user=user, content=QUESTION, client_msg_id=uuid.uuid4().hex)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def _run(way: Way, user: Any, messages: int, concurrency: int) -> tuple[list[float], float]:
    """The times of `messages` admissions, `concurrency` at a time, and the round trips per message."""
    global _sent
    sent_before, times = _sent, []

    async def client(count: int) -> None:
        for _ in range(count):
            times.append(await way(_request(user)))

    share, extra = divmod(messages, concurrency)
    await asyncio.gather(*(client(share + (i < extra)) for i in range(concurrency)))
    return times, (_sent - sent_before) / messages


async def _sent_before_upstream(way: Way, user: Any) -> int:
    """Round trips up to the permit, for one message."""
    global _sent
    if way is _new:
        request, s = _request(user), pam_settings()
        before = _sent
        checked = await preflight.check(request, s)
        await provider_breaker().hold_ahead(checked.ahead)
        await provider_breaker().acquire("openai")
        counted = _sent - before
        await preflight.settle(user.pk, request.message_id, limits.spend_of(None), breaker=provider_breaker(),
                               ahead=checked.ahead)
        return counted
    request = _request(user)
    before = _sent
    await claims.claim(request.user, request.client_msg_id, request.message_id)
    await limits.admit(user.pk, request.message_id, pam_settings())
    permit = await provider_breaker().acquire("openai")
    counted = _sent - before
    assert permit is not None
    await provider_breaker().success(permit)
    await limits.release(user.pk, request.message_id, None)
    return counted


async def _clean() -> None:
    client = redis_client()
    assert client is not None
    keys = [key async for key in client.scan_iter(match=f"{PREFIX}*", count=1000)]
    if keys:
        await client.delete(*keys)


async def main(args: argparse.Namespace) -> int:
    settings.PAM_MAX_CONCURRENT_ANSWERS = 10**6
    settings.PAM_RATE_LIMIT_MESSAGES = 10**7
    settings.OPENAI_API_KEY = "not-used"  # so that the simple route is OpenAI's (no request is made)
    user = get_user_model()(pk=10**9, username="bench")
    client = redis_client()
    assert client is not None
    day_keys = limits.check(user.pk, uuid.uuid4(), pam_settings()).keys
    await client.set(day_keys[2], "0", ex=3600)  # the day's spend, as read from the database by a first message
    ways: dict[str, Way] = {"three round trips (before)": _old, "one script (now)": _new}
    try:
        for way in ways.values():  # scripts loaded, connections opened
            await _run(way, user, 20, 4)
        results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
        for _ in range(args.rounds):
            for name, way in ways.items():
                for concurrency in (1, args.concurrency):
                    times, trips = await _run(way, user, args.messages, concurrency)
                    results.setdefault((name, concurrency), []).append((_pct(times, 0.5), _pct(times, 0.99), trips))
        print(f"Redis work before the upstream call, ms per message ({args.messages} messages, {args.rounds} rounds; "
              f"Redis at {settings.REDIS_URL}; host: {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}: shared, so expect noise)")
        print(f"{'way':28} {'clients':>7} {'p50 med':>8} {'p99 med':>8} {'p50 best':>9} {'p99 best':>9} "
              f"{'trips/msg':>9}")
        for (name, concurrency), rows in results.items():
            p50s, p99s = sorted(r[0] for r in rows), sorted(r[1] for r in rows)
            print(f"{name:28} {concurrency:>7} {p50s[len(p50s) // 2]:>8.3f} {p99s[len(p99s) // 2]:>8.3f} "
                  f"{p50s[0]:>9.3f} {p99s[0]:>9.3f} {rows[0][2]:>9.1f}")
        for name, way in ways.items():
            print(f"{name}: {await _sent_before_upstream(way, user)} round trip(s) before the upstream call")
    finally:
        await _clean()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500, help="messages per scenario and way (500)")
    parser.add_argument("--concurrency", type=int, default=50, help="tasks at once in the concurrent scenario (50)")
    parser.add_argument("--rounds", type=int, default=3, help="times the lot is run (3)")
    arguments = parser.parse_args()
    if urlparse(os.environ["REDIS_URL"]).hostname not in ("127.0.0.1", "localhost"):
        parser.error("REDIS_URL must be a Redis on 127.0.0.1")
    sys.exit(asyncio.run(asyncio.wait_for(main(arguments), timeout=300)))
