"""Chaos through the real server, bounded: sockets of many users send messages while the upstream faults (every
kind in fake_upstream.FAULT_KINDS), clients vanish mid-stream and come back (resume or re-send the same
client_msg_id) or not; with Redis, two processes and one of them SIGKILLed mid-load. Then, from the database: one
finished answer per user message, no message charged twice, nothing lost; no traceback in any server log.

The engine is bench/soak.py's (the soak with figures, not in CI); here it runs small: a few hundred messages.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.soak import (
    SERVER_ENV,
    UPSTREAM_OPTIONS,
    Plan,
    Upstream,
    check_database,
    drive,
    figures,
    log_problems,
    make_cookies,
    wait_until_settled,
)
from fake_upstream import FAULT_KINDS
from pam_hybrid.models import Message
from tests.support.servers import run_daphne

pytestmark = [pytest.mark.live]

# The breakers are lifted: this is about faults of single calls (their retries and fallbacks), not about a provider
# that is down, and a burst of them must not shed the healthy messages (issue 13's breaker work measures that).
CHAOS_ENV = {**SERVER_ENV, "PAM_BREAKER_FAILURES": "100000", "PAM_BREAKER_MIN_CALLS": "100000",
             "PAM_MAX_SOCKETS_PER_USER": "20"}
PLAN = Plan(sockets=40, messages=5, sockets_per_user=4, fault_rate=0.3, vanish_rate=0.15, arrival_spread_s=1.0,
            think_s=(0.05, 0.3), frame_timeout_s=20.0, deadline_s=75.0)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream(**UPSTREAM_OPTIONS)
    try:
        yield server
    finally:
        server.stop()


def daphne_pid(url: str) -> int:
    """The pid of the daphne process (a child of this one) serving `url`."""
    port = url.rsplit(":", 1)[1].encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            if parent == os.getpid() and b"daphne" in b" ".join(argv) and port in argv:
                return int(entry.name)
    raise AssertionError(f"no daphne child serves {url}")


@pytest.mark.timeout(180)
def test_chaos_every_message_is_answered_once_and_charged_at_most_once(
    transactional_db: Any, upstream: Upstream, tmp_path: Path
) -> None:
    cookies = make_cookies(PLAN.sockets, PLAN.sockets_per_user, "chaos")
    with run_daphne(upstream, tmp_path, **CHAOS_ENV) as url:  # type: ignore[arg-type]
        clients, failures, seconds = asyncio.run(drive(lambda: [url], cookies, PLAN))
        left = wait_until_settled(15)
    exchanges = [e for c in clients for e in c.exchanges]
    seen = figures(exchanges, seconds)
    print(seen)
    report = upstream.report()
    assert not failures
    assert left == 0
    assert check_database(exchanges) == []
    assert log_problems([p.read_text(errors="replace") for p in tmp_path.glob("daphne-*.log")]) == []
    assert set(report["fault_counts"]) == set(FAULT_KINDS), report["fault_counts"]
    assert {e.plan for e in exchanges} == {"stay", "abandon", "resume", "resend"}
    assert seen.messages == PLAN.sockets * PLAN.messages
    assert seen.healthy_ratio >= 0.97, seen


@pytest.mark.timeout(180)
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="two processes share their state through Redis")
def test_chaos_a_killed_process_loses_nothing_and_the_other_keeps_serving(
    transactional_db: Any, upstream: Upstream, tmp_path: Path
) -> None:
    plan = Plan(sockets=30, messages=6, sockets_per_user=3, fault_rate=0.1, vanish_rate=0.05, arrival_spread_s=0.5,
                think_s=(0.05, 0.2), frame_timeout_s=10.0, deadline_s=90.0, kill_after_s=2.5)
    cookies = make_cookies(plan.sockets, plan.sockets_per_user, "chaos-kill")
    shared = {**CHAOS_ENV, "PAM_REDIS_PREFIX": f"pam-test:chaos-{os.getpid()}:"}
    with run_daphne(upstream, tmp_path, **shared) as first, run_daphne(upstream, tmp_path, **shared) as second:
        killed: list[str] = []

        def kill() -> None:
            os.kill(daphne_pid(second), signal.SIGKILL)
            killed.append(second)

        def live() -> list[str]:
            return [url for url in (first, second) if url not in killed]

        clients, failures, seconds = asyncio.run(drive(live, cookies, plan, kill))
        left = wait_until_settled(20)
    exchanges = [e for c in clients for e in c.exchanges]
    seen = figures(exchanges, seconds)
    print(seen)
    assert killed and not failures
    assert left == 0
    assert check_database(exchanges) == []
    assert log_problems([p.read_text(errors="replace") for p in tmp_path.glob("daphne-*.log")]) == []
    # The killed process's answers in flight were swept as interrupted; the other one answered the rest.
    assert Message.objects.filter(role=Message.Role.ASSISTANT, finish_reason="interrupted").exists()
    assert seen.closes[1006] > 0, seen
    # Whether the message in flight at the kill completes elsewhere is timing (one already started is swept as
    # interrupted, as above); what must hold is that a client whose socket died goes on being answered.
    served_after_kill = [c for c in clients if any(1006 in e.closes for e in c.exchanges)
                         and any(e.complete for e in c.exchanges[_first_died(c.exchanges):])]
    assert served_after_kill, "no client whose socket died with the process got a complete answer elsewhere"


def _first_died(exchanges: list[Any]) -> int:
    return next(i for i, e in enumerate(exchanges) if 1006 in e.closes)
