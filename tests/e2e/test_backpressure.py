"""A reader that stops reading, over a real daphne server: the tokens its socket could not take go out as fewer,
larger frames once it reads again, the text arrives whole and in order, and resuming after a coalesced frame's
sequence number gives exactly the rest."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from fake_upstream import FakeUpstream, Scenario

pytestmark = [pytest.mark.live]

TOKENS = 600
# 960 kB of text: far past every buffer on the way, and under the socket's 1 MiB frame limit when resuming sends the
# saved rest in one frame.
WORDS = [f"{i:04d}{'x' * 1595} " for i in range(TOKENS)]


@pytest.fixture
def session_cookie(live_server_url: str, user: Any, client: Any) -> str:
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def _small_window_socket(live_server_url: str) -> socket.socket:
    parts = urlsplit(live_server_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting, so the window starts small
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    sock.setblocking(False)
    return sock


async def _frames_until_end(ws: ClientConnection) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
        frames.append(frame)
        if frame.get("chunk_type") in ("end", "error"):
            return frames


async def test_a_reader_that_stops_gets_coalesced_frames_and_the_whole_text(
    live_server_url: str, session_cookie: str, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(Scenario(text="".join(WORDS)))
    ws_url = live_server_url.replace("http://", "ws://") + "/ws/chat/"
    headers = {"Cookie": session_cookie}
    async with connect(ws_url, origin=Origin(live_server_url), additional_headers=headers,
                       sock=_small_window_socket(live_server_url), max_queue=1) as ws:
        await ws.send(json.dumps({"type": "message", "content": "a long one", "conversation_id": None,
                                  "stream": True, "route": "simple", "client_msg_id": "slow-reader"}))
        start = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert start["chunk_type"] == "start"
        assert await fake_upstream.wait_until(
            lambda: bool(fake_upstream.requests) and fake_upstream.requests[-1].outcome == "completed", 30)
        await asyncio.sleep(1.0)  # not reading while the whole answer is produced
        frames = await _frames_until_end(ws)

    tokens = [f for f in frames if f["chunk_type"] == "token"]
    assert frames[-1]["chunk_type"] == "end"
    assert "".join(f["content"] for f in tokens) == "".join(WORDS)
    seqs = [f["metadata"]["seq"] for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert seqs[-1] == TOKENS + 1  # start is 0, tokens 1..TOKENS, end after them: coalescing renumbers nothing
    coalesced = [f for f in tokens if len(f["content"]) > len(WORDS[0])]
    assert coalesced and len(tokens) < TOKENS

    # Resuming after a coalesced frame: exactly the text after it.
    first = coalesced[0]
    before = "".join(f["content"] for f in tokens[:tokens.index(first) + 1])
    async with connect(ws_url, origin=Origin(live_server_url), additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "resume", "message_id": start["metadata"]["message_id"],
                                  "last_seq": first["metadata"]["seq"]}))
        rest = await _frames_until_end(ws)
    assert before + "".join(f["content"] for f in rest if f["chunk_type"] == "token") == "".join(WORDS)
