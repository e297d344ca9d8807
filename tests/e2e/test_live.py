"""End to end: a real daphne server process, a real WebSocket client, the real SDKs and the fake upstream."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from fake_upstream import FakeToolCall, FakeUpstream, Scenario
from pam_hybrid.models import Message, UsageRecord

pytestmark = [pytest.mark.live]


@pytest.fixture
def session_cookie(live_server_url: str, user: Any, client: Any) -> str:
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def ws_url(live_server_url: str) -> str:
    return live_server_url.replace("http://", "ws://") + "/ws/chat/"


async def test_answer_streams_over_a_real_socket(
    live_server_url: str, session_cookie: str, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(Scenario(text="Streaming over a real socket works.", token_delay_ms=30))
    async with connect(ws_url(live_server_url), origin=live_server_url,
                       additional_headers={"Cookie": session_cookie}) as ws:
        sent_at = time.perf_counter()
        await ws.send(json.dumps({"type": "message", "content": "hello", "conversation_id": None, "stream": True,
                                  "route": "simple", "client_msg_id": "e2e-1"}))
        frames, arrivals = [], []
        while True:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            arrivals.append(time.perf_counter() - sent_at)
            if frame["chunk_type"] in ("end", "error"):
                break

    kinds = [f["chunk_type"] for f in frames]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("token") == 6
    assert "".join(f["content"] for f in frames if f["chunk_type"] == "token") == "Streaming over a real socket works."
    token_times = [t for t, f in zip(arrivals, frames, strict=True) if f["chunk_type"] == "token"]
    # Tokens arrive as they are generated (30 ms apart upstream), not in one burst at the end.
    assert token_times[-1] - token_times[0] > 0.1
    end = frames[-1]["metadata"]
    assert end["provider"] == "openai" and end["finish_reason"] == "stop"

    answer = await sync_to_async(Message.objects.get)(id=end["message_id"])
    usage = await sync_to_async(UsageRecord.objects.get)(message_id=end["message_id"])
    assert answer.status == "complete" and answer.content == "Streaming over a real socket works."
    assert usage.output_tokens == 6 and usage.ttft_ms is not None


async def test_two_tools_in_one_turn_over_a_real_socket(
    live_server_url: str, session_cookie: str, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(
        Scenario(tool_calls=[FakeToolCall("calculate", {"expression": "6 * 7"}),
                             FakeToolCall("current_datetime", {"timezone": "Asia/Tokyo"})],
                 input_tokens=100, output_tokens=20),
        Scenario(text="42, and it is morning in Tokyo.", input_tokens=200, output_tokens=9),
    )
    async with connect(ws_url(live_server_url), origin=live_server_url,
                       additional_headers={"Cookie": session_cookie}) as ws:
        await ws.send(json.dumps({"type": "message", "content": "6*7 and the time in Tokyo?", "stream": True,
                                  "conversation_id": None, "route": "complex", "client_msg_id": "e2e-tools"}))
        frames = []
        while not frames or frames[-1]["chunk_type"] not in ("end", "error"):
            frames.append(json.loads(await ws.recv()))
    kinds = [f["chunk_type"] for f in frames]
    assert kinds[:3] == ["start", "tool_call", "tool_call"] and kinds.count("tool_result") == 2
    assert kinds.index("token") > max(i for i, k in enumerate(kinds) if k == "tool_result")
    end = frames[-1]["metadata"]
    assert (end["input_tokens"], end["output_tokens"], end["model_calls"]) == (300, 29, 2)
    usage = await sync_to_async(UsageRecord.objects.get)(message_id=end["message_id"])
    assert [c["output_tokens"] for c in usage.model_calls] == [20, 9]


async def test_socket_idle_longer_than_redis_timeouts_still_answers(
    live_server_url: str, session_cookie: str, fake_upstream: FakeUpstream
) -> None:
    """With the Redis channel layer, an idle socket used to be closed with 1011 after redis-py's 5 s timeout."""
    async with connect(ws_url(live_server_url), origin=live_server_url,
                       additional_headers={"Cookie": session_cookie}) as ws:
        await asyncio.sleep(6)
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}


async def test_socket_without_a_session_is_closed_4401(live_server_url: str) -> None:
    async with connect(ws_url(live_server_url), origin=live_server_url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_socket_from_a_foreign_origin_is_refused(live_server_url: str, session_cookie: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(live_server_url), origin="http://evil.example",
                           additional_headers={"Cookie": session_cookie}):
            pass
    assert refused.value.response.status_code == 403


async def test_server_refuses_a_frame_over_its_size_limit_before_the_app_sees_it(
    live_server_url: str, session_cookie: str
) -> None:
    async with connect(ws_url(live_server_url), origin=live_server_url, max_size=None,
                       additional_headers={"Cookie": session_cookie}) as ws:
        await ws.send(json.dumps({"type": "message", "content": "x" * (2 * 1024 * 1024), "stream": True}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    # daphne's 1 MiB message limit: autobahn drops the connection (with 1009 when the close frame gets out).
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1009
    assert not await sync_to_async(Message.objects.exists)()


def test_chat_page_and_static_files_are_served(live_server_url: str) -> None:
    with urllib.request.urlopen(live_server_url + "/accounts/login/") as response:
        assert response.status == 200
        assert b"/static/pam_hybrid/" in response.read()
    with urllib.request.urlopen(live_server_url + "/static/pam_hybrid/chat.js") as response:
        assert response.status == 200 and "javascript" in response.headers["Content-Type"]
        assert b"ChatPage" in response.read()
