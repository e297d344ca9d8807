"""/metrics: who may read it, and that its figures are those of the answers saved (through the real socket, SDKs
and fake upstream), in one process and added up over two real daphne processes in multiprocess mode."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect as ws_connect

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.models import ModelCallRecord, UsageRecord
from tests.support.answers import settled
from tests.support.servers import daphne_log, run_daphne
from tests.support.sockets import connect, message, receive_until_done

pytestmark = [pytest.mark.django_db(transaction=True)]

TOKEN = "scrape-token-for-tests-0123456789"
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def quick_failures(settings: Any) -> None:
    settings.PAM_RETRIES = 0
    settings.PAM_RETRY_BACKOFF_MS = 1


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="sam", password="correct-horse-battery-staple",
                                                 is_staff=True)


async def staff_client(staff: Any) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(staff)
    return client


def samples_of(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


async def scrape(client: AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == TEXT_FORMAT
    return samples_of(response.content.decode())


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return after.get(key(name, **labels), 0.0) - before.get(key(name, **labels), 0.0)


def series(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (sample_name, labels), value in samples.items() if sample_name == name}


async def answer(user: Any, route: str) -> list[dict[str, Any]]:
    communicator = await connect(user)
    await communicator.send_json_to(message("hello there", route=route, client_msg_id=str(uuid.uuid4())))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    return frames


@database_sync_to_async
def usage_records() -> list[UsageRecord]:
    return list(UsageRecord.objects.all())


@database_sync_to_async
def call_rows() -> list[ModelCallRecord]:
    return list(ModelCallRecord.objects.all())


# --- who may read it ----------------------------------------------------------------------------------------------


async def test_staff_session_reads_metrics_in_the_prometheus_text_format(staff: Any) -> None:
    client = await staff_client(staff)
    response = await client.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"] == TEXT_FORMAT
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {"pam_answers", "pam_ttft_seconds", "pam_answer_seconds", "pam_tokens", "pam_cost_usd",
            "pam_active_streams", "pam_breaker_state"} <= names
    assert "no-cache" in response["Cache-Control"]


async def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(staff: Any) -> None:
    client = await staff_client(staff)
    response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.content.decode().endswith("# EOF\n")


async def test_anonymous_gets_401_and_no_metrics_nor_a_login_redirect() -> None:
    response = await AsyncClient().get("/metrics")
    assert response.status_code == 401
    assert b"pam_" not in response.content and "Location" not in response


async def test_signed_in_non_staff_gets_403(user: Any) -> None:
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.get("/metrics")
    assert response.status_code == 403 and b"pam_" not in response.content


async def test_bearer_token_is_accepted_only_when_it_matches_the_setting(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = AsyncClient()

    async def status(authorization: str) -> int:
        response = await client.get("/metrics", headers={"Authorization": authorization})
        return int(response.status_code)

    # No token configured: no bearer is ever enough, not even an empty one.
    settings.PAM_METRICS_TOKEN = ""
    assert await status("Bearer ") == 401 and await status("Bearer") == 401
    settings.PAM_METRICS_TOKEN = TOKEN
    assert await status(f"Bearer {TOKEN}") == 200
    assert await status(f"bearer {TOKEN}") == 200  # the scheme is case-insensitive (RFC 9110)
    assert await status(f"Bearer {TOKEN}x") == 401
    assert await status(f"Bearer {TOKEN[:-1]}") == 401
    assert await status(f"Basic {TOKEN}") == 401
    response = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"' and b"pam_" not in response.content
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


# --- what it reports ----------------------------------------------------------------------------------------------


async def test_counters_and_histograms_match_the_saved_answers(
    user: Any, staff: Any, fake_upstream: FakeUpstream
) -> None:
    client = await staff_client(staff)
    before = await scrape(client)
    fake_upstream.enqueue(
        Scenario(provider="openai", text="An openai answer.", input_tokens=1000, output_tokens=2000, ttft_ms=50),
        Scenario(provider="anthropic", text="An anthropic answer.", input_tokens=300, output_tokens=400, ttft_ms=80),
        # The third: OpenAI fails, so does the fallback: an error answer, with two failed attempts.
        Scenario(provider="openai", status=500), Scenario(provider="anthropic", status=500),
    )
    assert (await answer(user, "simple"))[-1]["chunk_type"] == "end"
    assert (await answer(user, "complex"))[-1]["chunk_type"] == "end"
    assert (await answer(user, "simple"))[-1]["chunk_type"] == "error"
    await settled()
    after = await scrape(client)
    records = await usage_records()
    assert sorted(r.outcome for r in records) == ["complete", "complete", "error"]

    answers = Counter((r.route, r.provider, r.model, r.outcome) for r in records)
    assert answers == {("simple", "openai", "gpt-4o-mini", "complete"): 1,
                       ("complex", "anthropic", "claude-sonnet-5-5", "complete"): 1,
                       ("simple", "anthropic", "claude-sonnet-5-5", "error"): 1}
    for (route, provider, model, outcome), count in answers.items():
        labels = {"route": route, "provider": provider, "model": model, "outcome": outcome}
        assert delta(before, after, "pam_answers_total", **labels) == count

    tokens: dict[tuple[str, str, str], int] = defaultdict(int)
    cost: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    calls: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for row in await call_rows():  # the same rows the dashboard and pam_usage read
        calls[row.provider, row.model, row.basis, row.ended] += 1
        for direction, count in (("input", row.input_tokens), ("output", row.output_tokens)):
            if count:
                tokens[row.provider, row.model, direction] += count
        assert row.cost_usd is not None
        cost[row.provider, row.model, row.basis] += row.cost_usd
    assert dict(tokens) == {("openai", "gpt-4o-mini", "input"): 1000, ("openai", "gpt-4o-mini", "output"): 2000,
                            ("anthropic", "claude-sonnet-5-5", "input"): 300,
                            ("anthropic", "claude-sonnet-5-5", "output"): 400}
    assert sum(tokens[k] for k in tokens if k[2] == "input") == sum(r.input_tokens for r in records)
    for (provider, model, direction), count in tokens.items():
        assert delta(before, after, "pam_tokens_total", provider=provider, model=model, direction=direction) == count
    # gpt-4o-mini: $0.15 / $0.60 per million; claude-sonnet-5-5: $2 / $10; the refused calls of the third cost 0.
    assert dict(cost) == {("openai", "gpt-4o-mini", "reported"): Decimal("0.00135"),
                          ("anthropic", "claude-sonnet-5-5", "reported"): Decimal("0.0046"),
                          ("openai", "gpt-4o-mini", "refused"): 0, ("anthropic", "claude-sonnet-5-5", "refused"): 0}
    for (provider, model, basis), usd in cost.items():
        assert delta(before, after, "pam_cost_usd_total", provider=provider, model=model, basis=basis) == (
            pytest.approx(float(usd)))
    for (provider, model, basis, ended), count in calls.items():
        assert delta(before, after, "pam_model_calls_total", provider=provider, model=model, basis=basis,
                     ended=ended) == count
    assert sum(calls.values()) == 4

    for provider, model in {(r.provider, r.model) for r in records}:
        answered = [r for r in records if (r.provider, r.model) == (provider, model)]
        with_ttft = [r.ttft_ms / 1000 for r in answered if r.ttft_ms is not None]
        assert delta(before, after, "pam_ttft_seconds_count", provider=provider, model=model) == len(with_ttft)
        assert delta(before, after, "pam_ttft_seconds_sum", provider=provider, model=model) == pytest.approx(
            sum(with_ttft))
        assert delta(before, after, "pam_ttft_seconds_bucket", provider=provider, model=model, le="0.05") == 0
        assert delta(before, after, "pam_ttft_seconds_bucket", provider=provider, model=model, le="30.0") == len(
            with_ttft)
    for provider, model, outcome in {(r.provider, r.model, r.outcome) for r in records}:
        totals = [r.total_ms / 1000 for r in records if (r.provider, r.model, r.outcome) == (provider, model, outcome)]
        labels = {"provider": provider, "model": model, "outcome": outcome}
        assert delta(before, after, "pam_answer_seconds_count", **labels) == len(totals)
        assert delta(before, after, "pam_answer_seconds_sum", **labels) == pytest.approx(sum(totals))

    failed = Counter((a["provider"], a["error"]) for r in records for a in r.attempts)
    assert failed == {("openai", "ProviderUnavailable"): 1, ("anthropic", "ProviderUnavailable"): 1}
    for (provider, error), count in failed.items():
        assert delta(before, after, "pam_failed_attempts_total", provider=provider, error=error) == count
    assert delta(before, after, "pam_fallbacks_total", from_provider="openai", to_provider="anthropic") == 1
    assert series(after, "pam_active_streams") == {(): 0.0}


async def test_breaker_state_is_read_from_the_breaker_at_scrape_time(
    user: Any, staff: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_BREAKER_FAILURES = 1
    client = await staff_client(staff)
    assert series(await scrape(client), "pam_breaker_state") == {
        (("provider", "anthropic"),): 0.0, (("provider", "offline"),): 0.0, (("provider", "openai"),): 0.0,
    }
    fake_upstream.enqueue(Scenario(provider="openai", status=503), Scenario(provider="anthropic", text="Hi."))
    end = (await answer(user, "simple"))[-1]
    assert end["metadata"]["provider"] == "anthropic"
    await settled()
    assert series(await scrape(client), "pam_breaker_state") == {
        (("provider", "anthropic"),): 0.0, (("provider", "offline"),): 0.0, (("provider", "openai"),): 2.0,
    }


async def test_active_streams_counts_answers_while_they_stream(
    user: Any, staff: Any, fake_upstream: FakeUpstream
) -> None:
    client = await staff_client(staff)
    assert series(await scrape(client), "pam_active_streams") == {(): 0.0}
    fake_upstream.enqueue(Scenario(text="one two three four five six seven eight", token_delay_ms=150))
    communicator = await connect(user)
    await communicator.send_json_to(message("hello", route="simple", client_msg_id=str(uuid.uuid4())))
    assert (await communicator.receive_json_from(timeout=5))["chunk_type"] == "start"
    assert (await communicator.receive_json_from(timeout=5))["chunk_type"] == "token"
    assert series(await scrape(client), "pam_active_streams") == {(): 1.0}
    await communicator.send_json_to({"type": "cancel"})
    assert (await receive_until_done(communicator))[-1]["metadata"]["finish_reason"] == "cancelled"
    await communicator.disconnect()
    await settled()
    after = await scrape(client)
    assert series(after, "pam_active_streams") == {(): 0.0}


async def test_an_answer_is_no_longer_an_active_stream_once_its_end_reaches_the_client(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    """A scrape made as soon as a client has read the end does not count that answer as streaming (it did, for a
    moment, while the answer tidied up: CI's two-process test read 1 instead of 0)."""
    before = active_streams()
    fake_upstream.enqueue(Scenario(provider="openai", text="Done now."))
    communicator = await connect(user)
    await communicator.send_json_to(message("hello there", route="simple", client_msg_id=str(uuid.uuid4())))
    assert (await communicator.receive_json_from(timeout=5))["chunk_type"] == "start"
    assert active_streams() == before + 1
    assert (await receive_until_done(communicator))[-1]["chunk_type"] == "end"
    assert active_streams() == before
    await communicator.disconnect()


def active_streams() -> float:
    return REGISTRY.get_sample_value("pam_active_streams") or 0.0


# --- several processes ----------------------------------------------------------------------------------------------


def _get(url: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


async def scrape_server(server: str) -> Samples:
    status, body = await asyncio.to_thread(_get, server + "/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body
    return samples_of(body)


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for labels_, value in series(samples, name).items() if wanted <= set(labels_))


def answer_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("logger") == "pam_hybrid.answers":
                lines.append(record)
    return lines


async def ask_server(server: str, cookie: str, route: str) -> list[dict[str, Any]]:
    async with ws_connect(server.replace("http://", "ws://") + "/ws/chat/", origin=server,
                          additional_headers={"Cookie": cookie}) as ws:
        await ws.send(json.dumps({"type": "message", "content": "hello", "conversation_id": None, "stream": True,
                                  "route": route, "client_msg_id": str(uuid.uuid4())}))
        frames = []
        while not frames or frames[-1].get("chunk_type") not in ("end", "error"):
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        return frames


def live_gauge_files(directory: Path) -> Iterable[Path]:
    return sorted(directory.glob("gauge_livesum_*.db"))


@pytest.fixture
def cookie(user: Any, client: Any) -> str:
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


@pytest.mark.live
async def test_two_processes_in_multiprocess_mode_report_their_sum(
    cookie: str, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared), "PAM_METRICS_TOKEN": TOKEN}
    simple = Scenario(provider="openai", text="Simple.", input_tokens=100, output_tokens=20)
    complex_ = Scenario(provider="anthropic", text="Complex.", input_tokens=300, output_tokens=40)
    with run_daphne(fake_upstream, tmp_path, **env) as first:
        with run_daphne(fake_upstream, tmp_path, **env) as second:
            assert len(list(live_gauge_files(shared))) == 2
            anonymous, _ = await asyncio.to_thread(_get, first + "/metrics", {})
            assert anonymous == 401
            fake_upstream.enqueue(simple, complex_, simple, simple, complex_)
            for server, route in ((first, "simple"), (first, "complex"), (second, "simple"), (second, "simple"),
                                  (second, "complex")):
                assert (await ask_server(server, cookie, route))[-1]["chunk_type"] == "end"
            assert total(await scrape_server(first), "pam_active_streams") == 0

            # An answer streaming in the second process is an active stream in the first one's report.
            fake_upstream.enqueue(Scenario(provider="openai", text="one two three four five six", token_delay_ms=150,
                                           input_tokens=10, output_tokens=6))
            async with ws_connect(second.replace("http://", "ws://") + "/ws/chat/",
                                  origin=second, additional_headers={"Cookie": cookie}) as ws:
                await ws.send(json.dumps({"type": "message", "content": "slow", "conversation_id": None,
                                          "stream": True, "route": "simple", "client_msg_id": "slow"}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["chunk_type"] == "start"
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["chunk_type"] == "token"
                assert total(await scrape_server(first), "pam_active_streams") == 1
                while json.loads(await asyncio.wait_for(ws.recv(), 10))["chunk_type"] != "end":
                    pass
            samples = await scrape_server(first)
            for _ in range(100):  # the second process counts the answer just after its last frame went out
                if total(samples, "pam_answers_total") == 6:
                    break
                await asyncio.sleep(0.05)
                samples = await scrape_server(first)
        # The second process has exited: its answers still count, its live gauge is gone.
        assert len(list(live_gauge_files(shared))) == 1
        after_exit = await scrape_server(first)

    records = await usage_records()
    assert len(records) == 6 and {r.outcome for r in records} == {"complete"}
    for reported in (samples, after_exit):
        assert total(reported, "pam_answers_total") == 6
        assert total(reported, "pam_answers_total", provider="openai", outcome="complete") == 4
        assert total(reported, "pam_answers_total", provider="anthropic", outcome="complete") == 2
        assert total(reported, "pam_tokens_total", direction="input") == sum(r.input_tokens for r in records) == 910
        assert total(reported, "pam_tokens_total", direction="output") == sum(r.output_tokens for r in records) == 146
        assert total(reported, "pam_ttft_seconds_count") == 6
        assert total(reported, "pam_cost_usd_total") == pytest.approx(float(sum(r.cost_usd or 0 for r in records)))
        assert total(reported, "pam_active_streams") == 0
    # Each process logged one JSON line per answer it gave: two in the first, four in the second.
    lines = {server: answer_lines(daphne_log(tmp_path, server)) for server in (first, second)}
    assert [len(lines[first]), len(lines[second])] == [2, 4]
    assert {line["request_id"] for found in lines.values() for line in found} == {str(r.message_id) for r in records}
