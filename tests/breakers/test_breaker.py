"""The circuit breaker: the same behaviour from the in-process store and from Redis shared by several processes."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pam_hybrid.breakers import (
    BreakerConfig,
    BreakerStore,
    CircuitBreaker,
    MemoryBreakerStore,
    Permit,
    RedisBreakerStore,
    Transition,
    rules,
)

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
FAST = BreakerConfig(
    consecutive_failures=3, window_s=10, failure_rate=0.5, min_calls=100, cooldown_s=0.2, probes=2, probe_lease_s=0.4
)
COOLED_S = FAST.cooldown_s + 0.05


@asynccontextmanager
async def redis_prefix() -> AsyncIterator[tuple[Redis, str]]:
    """A client and a key prefix of this test's own; every key under it is deleted afterwards."""
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except RedisError:
        await client.aclose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    prefix = f"pam:breaker:test-{uuid.uuid4().hex}:"
    try:
        yield client, prefix
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[BreakerStore]:
    if request.param == "memory":
        yield MemoryBreakerStore()
        return
    async with redis_prefix() as (client, prefix):
        yield RedisBreakerStore(client, prefix=prefix)


async def fail(breaker: CircuitBreaker, times: int = 1, provider: str = "openai") -> Transition | None:
    transition = None
    for _ in range(times):
        permit = await breaker.acquire(provider)
        assert permit is not None
        transition = await breaker.failure(permit, reason="HTTP 503")
    return transition


async def succeed(breaker: CircuitBreaker, times: int = 1, provider: str = "openai") -> None:
    for _ in range(times):
        permit = await breaker.acquire(provider)
        assert permit is not None and not permit.probe
        assert await breaker.success(permit) is None


async def open_then_cool(breaker: CircuitBreaker) -> None:
    await fail(breaker, FAST.consecutive_failures)
    assert (await breaker.status("openai")).state == "open"
    await asyncio.sleep(COOLED_S)


async def probe(breaker: CircuitBreaker) -> Permit:
    permit = await breaker.acquire("openai")
    assert permit is not None and permit.probe
    return permit


async def test_opens_after_consecutive_failures(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    assert await fail(breaker, 2) is None
    assert (await breaker.status("openai")).consecutive_failures == 2

    transition = await fail(breaker)

    assert transition is not None
    assert (transition.provider, transition.from_state, transition.to_state) == ("openai", "closed", "open")
    assert transition.reason == "3 consecutive failures (last: HTTP 503)"
    assert abs(transition.at - datetime.now(UTC)) < timedelta(seconds=2)
    status = await breaker.status("openai")
    assert (status.state, status.consecutive_failures, status.window_calls) == ("open", 0, 0)
    assert status.opened_at == transition.at
    assert status.retry_at is not None and status.opened_at is not None
    cooldown = timedelta(seconds=FAST.cooldown_s)
    assert status.retry_at - status.opened_at == pytest.approx(cooldown, abs=timedelta(milliseconds=1))


async def test_a_success_resets_the_consecutive_count(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    await fail(breaker, 2)
    await succeed(breaker)
    assert (await breaker.status("openai")).consecutive_failures == 0
    assert await fail(breaker, 2) is None
    assert (await breaker.status("openai")).state == "closed"
    assert await fail(breaker) is not None


async def test_opens_on_the_failure_rate_once_the_window_has_min_calls(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, BreakerConfig(consecutive_failures=100, min_calls=4, failure_rate=0.5))
    await fail(breaker)
    await succeed(breaker)
    assert await fail(breaker) is None  # 2 of 3 failed, but 3 calls are fewer than min_calls
    await succeed(breaker, 3)
    assert await fail(breaker) is None  # 3 of 7 = 43%: below the rate
    status = await breaker.status("openai")
    assert (status.state, status.consecutive_failures, status.window_calls, status.window_failures) == (
        "closed", 1, 7, 3
    )

    transition = await fail(breaker)  # 4 of 8 = 50%

    assert transition is not None and (transition.from_state, transition.to_state) == ("closed", "open")
    assert transition.reason == "failure rate 50% over the last 60 s (4 of 8 calls)"


async def test_rate_is_never_applied_below_min_calls(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, BreakerConfig(consecutive_failures=100, min_calls=4, failure_rate=0.5))
    assert await fail(breaker, 3) is None
    assert (await breaker.status("openai")).state == "closed"
    assert await fail(breaker) is not None


async def test_the_window_forgets_old_calls(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, BreakerConfig(consecutive_failures=100, min_calls=4, window_s=0.3))
    await fail(breaker)
    await asyncio.sleep(0.2)
    await fail(breaker)
    await asyncio.sleep(0.2)  # the first failure is now 0.4 s old, the second 0.2 s

    assert await fail(breaker, 2) is None  # 4 failures in all, but only 3 in the window: below min_calls

    status = await breaker.status("openai")
    assert (status.state, status.window_calls, status.window_failures) == ("closed", 3, 3)
    assert await fail(breaker) is not None


async def test_an_open_breaker_rejects_at_once_without_changing_state(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, BreakerConfig(consecutive_failures=1, cooldown_s=30))
    await fail(breaker)
    before = await breaker.status("openai")

    started = time.perf_counter()
    results = [await breaker.acquire("openai") for _ in range(200)]
    elapsed_s = time.perf_counter() - started

    assert results == [None] * 200
    assert elapsed_s < 1
    assert await breaker.status("openai") == before


async def test_after_the_cool_down_exactly_k_probes_go_through_concurrently(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    await open_then_cool(breaker)

    permits = await asyncio.gather(*(breaker.acquire("openai") for _ in range(10)))

    admitted = [permit for permit in permits if permit is not None]
    assert len(admitted) == FAST.probes and all(permit.probe for permit in admitted)
    transitions = [permit.transition for permit in admitted if permit.transition is not None]
    assert len(transitions) == 1
    assert (transitions[0].from_state, transitions[0].to_state) == ("open", "half_open")
    assert transitions[0].reason == "cool-down of 0.2 s elapsed"
    status = await breaker.status("openai")
    assert (status.state, status.probes_in_flight) == ("half_open", FAST.probes)


async def test_a_probe_success_closes_the_breaker(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    await open_then_cool(breaker)
    permit = await probe(breaker)

    transition = await breaker.success(permit)

    assert transition is not None
    assert (transition.from_state, transition.to_state, transition.reason) == ("half_open", "closed", "probe succeeded")
    status = await breaker.status("openai")
    assert (status.state, status.opened_at, status.retry_at, status.probes_in_flight) == ("closed", None, None, 0)
    again = await breaker.acquire("openai")
    assert again is not None and not again.probe


async def test_a_probe_failure_reopens_with_a_new_cool_down(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    await open_then_cool(breaker)
    first_retry_at = (await breaker.status("openai")).retry_at
    permit = await probe(breaker)

    transition = await breaker.failure(permit, reason="HTTP 529")

    assert transition is not None
    assert (transition.from_state, transition.to_state) == ("half_open", "open")
    assert transition.reason == "probe failed (HTTP 529)"
    status = await breaker.status("openai")
    assert status.state == "open" and status.retry_at is not None and first_retry_at is not None
    assert status.retry_at > first_retry_at + timedelta(seconds=FAST.cooldown_s)
    assert await breaker.acquire("openai") is None
    await asyncio.sleep(COOLED_S)
    await probe(breaker)


async def test_an_expired_probe_lease_frees_its_slot(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    await open_then_cool(breaker)
    hung = await probe(breaker)
    await asyncio.sleep(0.3)
    live = await probe(breaker)
    assert await breaker.acquire("openai") is None

    await asyncio.sleep(0.2)  # the hung probe's 0.4 s lease ran out 0.1 s ago; the live one has 0.2 s left
    assert (await breaker.status("openai")).probes_in_flight == 1

    fresh = await probe(breaker)
    assert await breaker.acquire("openai") is None
    assert (await breaker.status("openai")).probes_in_flight == 2
    assert fresh.epoch == hung.epoch and fresh.token not in {hung.token, live.token}


async def test_a_probe_that_outlived_its_lease_still_reports_within_its_half_open_period(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    await open_then_cool(breaker)
    slow = await probe(breaker)
    await asyncio.sleep(FAST.probe_lease_s + 0.05)

    transition = await breaker.success(slow)

    assert transition is not None and transition.to_state == "closed"


async def test_release_counts_nothing(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    for _ in range(FAST.consecutive_failures + 1):
        permit = await breaker.acquire("openai")
        assert permit is not None
        await breaker.release(permit)
    status = await breaker.status("openai")
    assert (status.state, status.consecutive_failures, status.window_calls) == ("closed", 0, 0)

    await open_then_cool(breaker)
    permits = [await probe(breaker) for _ in range(FAST.probes)]
    assert await breaker.acquire("openai") is None
    await breaker.release(permits[0])

    assert (await breaker.status("openai")).state == "half_open"
    await probe(breaker)  # the released slot is free again
    assert await breaker.acquire("openai") is None


async def test_reports_from_a_closed_period_are_ignored_once_it_opened(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    in_flight = await breaker.acquire("openai")
    assert in_flight is not None
    await open_then_cool(breaker)
    await probe(breaker)

    assert await breaker.success(in_flight) is None
    assert await breaker.failure(in_flight, reason="late") is None
    assert (await breaker.status("openai")).state == "half_open"


async def test_a_success_from_before_the_breaker_reopened_does_not_close_it(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    await open_then_cool(breaker)
    slow, failing = await probe(breaker), await probe(breaker)
    assert await breaker.failure(failing, reason="HTTP 503") is not None  # re-opened
    await asyncio.sleep(COOLED_S)
    await probe(breaker)  # half-open again, a new period

    assert await breaker.success(slow) is None
    assert (await breaker.status("openai")).state == "half_open"
    await breaker.release(slow)
    assert (await breaker.status("openai")).probes_in_flight == 1


async def test_reports_from_before_a_reset_do_not_count(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    in_flight = await breaker.acquire("openai")
    assert in_flight is not None
    await breaker.reset("openai")
    assert await breaker.failure(in_flight, reason="late") is None
    assert (await breaker.status("openai")).window_failures == 0


async def test_callbacks_get_every_transition_and_a_raising_one_is_logged(
    store: BreakerStore, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = CircuitBreaker(store, FAST)
    seen: list[Transition] = []

    @breaker.on_transition
    async def broken(transition: Transition) -> None:
        raise RuntimeError("event table is down")

    @breaker.on_transition
    async def record(transition: Transition) -> None:
        seen.append(transition)

    with caplog.at_level(logging.ERROR, logger="pam_hybrid.breakers"):
        opened = await fail(breaker, FAST.consecutive_failures)
        await asyncio.sleep(COOLED_S)
        permit = await probe(breaker)
        closed = await breaker.success(permit)

    assert seen == [opened, permit.transition, closed]
    assert [t.to_state for t in seen] == ["open", "half_open", "closed"]
    failures = [r for r in caplog.records if "on_transition callback" in r.getMessage()]
    assert len(failures) == 3 and all(r.exc_info and r.exc_info[0] is RuntimeError for r in failures)


async def test_reset_forces_closed_and_reports_it(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, BreakerConfig(consecutive_failures=1, cooldown_s=30))
    seen: list[Transition] = []
    breaker.on_transition(lambda transition: _append(seen, transition))
    await fail(breaker)

    transition = await breaker.reset("openai")

    assert transition is not None
    assert (transition.from_state, transition.to_state) == ("open", "closed")
    assert transition.reason == "reset by an administrator"
    assert seen[-1] == transition
    permit = await breaker.acquire("openai")
    assert permit is not None and not permit.probe
    assert await breaker.reset("openai", reason="again") is None  # already closed: no transition


async def _append(seen: list[Transition], transition: Transition) -> None:
    seen.append(transition)


async def test_force_open_stays_open_without_probes_until_reset(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    seen: list[Transition] = []
    breaker.on_transition(lambda transition: _append(seen, transition))

    forced = await breaker.force_open("openai", actor="alice", reason="maintenance")

    assert forced is not None
    assert (forced.from_state, forced.to_state) == ("closed", "open")
    assert (forced.reason, forced.actor) == ("maintenance", "alice")
    assert abs(forced.at - datetime.now(UTC)) < timedelta(seconds=2)
    status = await breaker.status("openai")
    assert (status.state, status.forced_by, status.retry_at, status.opened_at) == ("open", "alice", None, forced.at)
    await asyncio.sleep(COOLED_S)  # past the cool-down: an automatic open would probe now
    assert [await breaker.acquire("openai") for _ in range(5)] == [None] * 5
    assert (await breaker.status("openai")) == status

    closed = await breaker.reset("openai", reason="maintenance over", actor="bob")

    assert closed is not None
    assert (closed.from_state, closed.to_state) == ("open", "closed")
    assert (closed.reason, closed.actor) == ("maintenance over", "bob")
    assert seen == [forced, closed]
    status = await breaker.status("openai")
    assert (status.state, status.forced_by, status.opened_at) == ("closed", "", None)
    permit = await breaker.acquire("openai")
    assert permit is not None and not permit.probe


async def test_forcing_open_an_open_breaker_stops_its_probes(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    await fail(breaker, FAST.consecutive_failures)

    forced = await breaker.force_open("openai", actor="alice")

    assert forced is not None and (forced.from_state, forced.to_state) == ("open", "open")
    assert forced.reason == "forced open by an administrator"
    await asyncio.sleep(COOLED_S)
    assert await breaker.acquire("openai") is None
    assert (await breaker.status("openai")).state == "open"


async def test_forcing_open_makes_earlier_permits_and_probes_stale(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    await open_then_cool(breaker)
    probing = await probe(breaker)

    forced = await breaker.force_open("openai", actor="alice")

    assert forced is not None and forced.from_state == "half_open"
    assert await breaker.success(probing) is None  # a probe from before cannot close a forced-open breaker
    status = await breaker.status("openai")
    assert (status.state, status.forced_by, status.probes_in_flight) == ("open", "alice", 0)
    await breaker.reset("openai")
    in_flight = await breaker.acquire("openai")
    assert in_flight is not None
    await breaker.force_open("openai", actor="alice")
    await breaker.reset("openai")
    assert await breaker.failure(in_flight, reason="late") is None
    assert (await breaker.status("openai")).window_failures == 0


async def test_forcing_open_twice_changes_nothing_and_keeps_who_did_it(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    assert await breaker.force_open("openai", actor="alice") is not None
    before = await breaker.status("openai")

    assert await breaker.force_open("openai", actor="bob") is None

    assert await breaker.status("openai") == before
    assert before.forced_by == "alice"
    with pytest.raises(ValueError):
        await breaker.force_open("anthropic", actor="")


async def test_a_forced_open_redis_breaker_never_expires_and_holds_for_every_process() -> None:
    async with redis_prefix() as (client, prefix):
        other = Redis.from_url(REDIS_URL)
        try:
            store = RedisBreakerStore(client, prefix=prefix, state_ttl_s=60)
            one = CircuitBreaker(store, FAST)
            two = CircuitBreaker(RedisBreakerStore(other, prefix=prefix, state_ttl_s=60), FAST)
            state_key = store.keys("openai")[0]
            await fail(one)
            assert 0 < await client.pttl(state_key) <= 60_000

            await one.force_open("openai", actor="alice")

            assert await client.pttl(state_key) == -1  # no expiry: a maintenance switch does not lapse
            assert await two.acquire("openai") is None
            assert (await two.status("openai")).forced_by == "alice"
            await two.reset("openai", actor="bob")
            assert 0 < await client.pttl(state_key) <= 60_000
            assert await one.acquire("openai") is not None
        finally:
            await other.aclose()


async def test_providers_have_separate_breakers(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    await fail(breaker, FAST.consecutive_failures, provider="openai")
    assert await breaker.acquire("openai") is None
    assert await breaker.acquire("anthropic") is not None
    assert (await breaker.status("anthropic")).state == "closed"


async def test_two_processes_share_one_breaker_and_admit_k_probes_between_them() -> None:
    async with redis_prefix() as (_, prefix):
        clients = [Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)]
        try:
            one, two = (CircuitBreaker(RedisBreakerStore(client, prefix=prefix), FAST) for client in clients)
            await fail(one, 2)
            assert (await two.status("openai")).consecutive_failures == 2
            assert await fail(two) is not None
            assert await one.acquire("openai") is None
            await asyncio.sleep(COOLED_S)

            permits = await asyncio.gather(*(b.acquire("openai") for _ in range(10) for b in (one, two)))

            admitted = [permit for permit in permits if permit is not None]
            assert len(admitted) == FAST.probes
            assert sum(permit.transition is not None for permit in admitted) == 1
            assert await two.success(admitted[0]) is not None  # a permit is valid in any process
            assert (await one.status("openai")).state == "closed"
        finally:
            for client in clients:
                await client.aclose()


async def test_redis_keys_live_under_the_prefix_with_ttls_and_the_window_is_trimmed() -> None:
    async with redis_prefix() as (client, prefix):
        store = RedisBreakerStore(client, prefix=prefix)
        # Finished calls leave the record with the window, except the latest `consecutive_failures` (here 2).
        breaker = CircuitBreaker(store, BreakerConfig(consecutive_failures=2, min_calls=100, window_s=1.5))
        await fail(breaker)
        await succeed(breaker, 2)
        await asyncio.sleep(1.6)
        await fail(breaker)

        keys = sorted([key.decode() async for key in client.scan_iter(match=f"{prefix}*")])
        state, calls, failures, _, outcomes = store.keys("openai")
        assert keys == sorted([state, calls, failures, outcomes])
        assert all([await client.pttl(key) > 0 for key in keys])
        assert await client.zcard(calls) == 2 and await client.zcard(failures) == 1
        assert await client.hlen(outcomes) == 2
        status = await breaker.status("openai")
        assert (status.state, status.window_calls, status.window_failures) == ("closed", 1, 1)


async def test_redis_store_times_with_the_redis_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    skewed_s = 3600.0
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + skewed_s)
    monkeypatch.setattr(rules, "now", lambda: real_time() + skewed_s)
    async with redis_prefix() as (client, prefix):
        breaker = CircuitBreaker(RedisBreakerStore(client, prefix=prefix), FAST)
        transition = await fail(breaker, FAST.consecutive_failures)
        assert transition is not None
        assert abs(transition.at - datetime.fromtimestamp(real_time(), UTC)) < timedelta(seconds=5)
        assert await breaker.acquire("openai") is None


async def test_an_unreachable_redis_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    store = RedisBreakerStore.from_url("redis://127.0.0.1:1/0", timeout_s=0.2)
    breaker = CircuitBreaker(store, FAST)
    with caplog.at_level(logging.WARNING, logger="pam_hybrid.breakers"):
        permit = await breaker.acquire("openai")
        assert permit is not None
        assert await breaker.failure(permit, reason="HTTP 503") is None
        await breaker.release(permit)  # not a probe: nothing to free, so no round trip
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 2
    await store.client.aclose()


# --- one outcome per call, read in the order the calls started --------------------------------------------------


async def start(breaker: CircuitBreaker, count: int) -> list[Permit]:
    permits = [await breaker.acquire("openai") for _ in range(count)]
    assert all(permit is not None and not permit.probe for permit in permits)
    return [permit for permit in permits if permit is not None]


async def test_fast_failures_do_not_overtake_a_slow_success_started_before_them(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)  # 3 consecutive failures open it
    first, slow, third, fourth = await start(breaker, 4)
    for permit in (first, third, fourth):  # three failures arrive before the slow call's success
        assert await breaker.failure(permit, reason="HTTP 500") is None
    assert (await breaker.status("openai")).state == "closed"  # the slow call, still running, breaks the run

    assert await breaker.success(slow) is None
    assert (await breaker.status("openai")).state == "closed"
    transition = await fail(breaker)  # third, fourth and this one: a run after the success
    assert transition is not None and transition.reason.startswith("3 consecutive failures")


async def test_a_concurrent_success_interrupts_a_streak(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    one, two, three, four = await start(breaker, 4)
    await breaker.failure(one, reason="HTTP 500")
    await breaker.failure(two, reason="HTTP 500")
    await breaker.success(three)  # started before the streak's last failure: interrupts it
    assert await breaker.failure(four, reason="HTTP 500") is None
    status = await breaker.status("openai")
    assert (status.state, status.consecutive_failures) == ("closed", 1)
    assert await fail(breaker) is None
    assert await fail(breaker) is not None  # four and the two after it: three in a row


async def test_a_running_call_that_fails_too_joins_the_runs_beside_it(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    one, hung, three = await start(breaker, 3)
    assert await breaker.failure(one, reason="HTTP 500") is None
    assert await breaker.failure(three, reason="HTTP 500") is None
    transition = await breaker.failure(hung, reason="timed out before the first token")
    assert transition is not None
    assert transition.reason == "3 consecutive failures (last: timed out before the first token)"


async def test_a_provider_that_is_down_opens_at_the_configured_failure_however_they_arrive(
    store: BreakerStore,
) -> None:
    breaker = CircuitBreaker(store, FAST)
    permits = await start(breaker, 6)
    hung = permits.pop(0)  # the oldest call hangs: it is not between the failures, so it breaks nothing
    outcomes = [await breaker.failure(permit, reason="HTTP 503") for permit in reversed(permits[:3])]
    assert outcomes[:2] == [None, None] and outcomes[2] is not None
    assert await breaker.failure(hung, reason="late") is None  # stale: the breaker has opened since


async def test_a_failure_after_the_first_token_overrules_its_success(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, FAST)
    permit = (await start(breaker, 1))[0]
    await breaker.success(permit)  # the first token
    await breaker.failure(permit, reason="reset mid-stream")
    await breaker.failure(permit, reason="reported twice")  # one call, one outcome
    status = await breaker.status("openai")
    assert (status.window_calls, status.window_failures, status.consecutive_failures) == (1, 1, 1)


async def test_the_rate_rule_counts_running_calls_and_needs_min_calls(store: BreakerStore) -> None:
    breaker = CircuitBreaker(store, BreakerConfig(consecutive_failures=100, min_calls=10, failure_rate=0.5))
    permits = await start(breaker, 12)
    for permit in permits[:4]:  # 4 failed of 12 started, 8 still running: 33%
        assert await breaker.failure(permit, reason="HTTP 500") is None
    assert (await breaker.status("openai")).window_calls == 12
    for permit in permits[4:6]:
        await breaker.release(permit)  # a user's stop: not a call any more
    transition = await breaker.failure(permits[6], reason="HTTP 500")  # 5 of 10
    assert transition is not None
    assert transition.reason == "failure rate 50% over the last 60 s (5 of 10 calls)"

    few = CircuitBreaker(store, BreakerConfig(consecutive_failures=100, min_calls=10, failure_rate=0.5))
    assert await fail(few, 9, provider="anthropic") is None  # 100%, but only 9 calls
    assert await fail(few, 1, provider="anthropic") is not None


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        BreakerConfig(probes=0)
    with pytest.raises(ValueError):
        BreakerConfig(failure_rate=1.5)
    with pytest.raises(ValueError):
        BreakerConfig(cooldown_s=0)
