"""Holding tokens for a reader that fell behind: what goes out, in which order, numbered how (the real socket case is
tests/e2e/test_backpressure.py; here the gauge is paused and resumed as twisted would)."""

from __future__ import annotations

import asyncio
import json

from pam_hybrid.chat.backpressure import Outbox, WriteGauge
from pam_hybrid.chat.protocol import COALESCED_MAX_CHARS, coalesced_tokens
from pam_hybrid.domain.chunks import StreamChunk


def token(seq: int, text: str) -> StreamChunk:
    return StreamChunk("token", text, {"seq": seq})


def test_coalesced_tokens_are_numbered_as_their_last_and_split_under_the_limit() -> None:
    half = "x" * (COALESCED_MAX_CHARS // 2)
    joined = coalesced_tokens([token(1, "a"), token(2, half), token(3, half), token(4, "b")])
    assert [(c.content, c.metadata) for c in joined] == [("a" + half, {"seq": 2}), (half + "b", {"seq": 4})]
    assert coalesced_tokens([token(7, "y" * (COALESCED_MAX_CHARS + 1))])[0].metadata == {"seq": 7}


async def test_tokens_are_held_while_paused_and_go_out_as_one_before_anything_else() -> None:
    sent: list[dict[str, object]] = []

    async def send_text(text: str) -> None:
        sent.append(json.loads(text))

    gauge = WriteGauge()
    outbox = Outbox(send_text, gauge)
    await outbox.deliver(token(1, "one "), token(1, "one ").frame_text())
    gauge.pauseProducing()
    for chunk in (token(2, "two "), token(3, "three ")):
        await outbox.deliver(chunk, chunk.frame_text())
    assert [f["content"] for f in sent] == ["one "]
    gauge.resumeProducing()
    await asyncio.sleep(0)
    assert [(f["content"], f["metadata"]) for f in sent[1:]] == [("two three ", {"seq": 3})]

    gauge.pauseProducing()
    await outbox.deliver(token(4, "four"), token(4, "four").frame_text())
    end = StreamChunk("end", "", {"seq": 5})
    await outbox.deliver(end, end.frame_text())  # not held: the held tokens go first
    assert [(f["chunk_type"], f["metadata"]["seq"]) for f in sent[2:]] == [("token", 4), ("end", 5)]  # type: ignore[index]
