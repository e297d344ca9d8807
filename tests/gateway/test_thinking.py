"""A model that thinks visibly, through the whole gateway: thinking longer than the first-token timeout is progress
(the answer comes, no retry), and the thinking is never sent as answer text."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from fake_upstream import FakeUpstream, Scenario
from tests.support.sockets import answer_frames, message, text_of

pytestmark = [pytest.mark.django_db(transaction=True)]


async def ask_complex(user: Any) -> list[dict[str, Any]]:
    return await answer_frames(user, message("Compare the two designs.", route="complex",
                                             client_msg_id=str(uuid.uuid4())))


async def test_thinking_longer_than_the_first_token_timeout_still_answers(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_FIRST_TOKEN_TIMEOUT_MS = 300
    settings.PAM_IDLE_TIMEOUT_MS = 300
    thinking = " ".join(f"step{i}" for i in range(12))  # 12 pieces, 60 ms apart: 0.7 s before the text
    fake_upstream.enqueue(Scenario(provider="anthropic", thinking=thinking, text="The second one.",
                                   ttft_ms=20, token_delay_ms=60))
    frames = await ask_complex(user)
    assert frames[-1]["chunk_type"] == "end" and frames[-1]["metadata"]["provider"] == "anthropic"
    assert text_of(frames) == "The second one."
    assert not any("step" in f.get("content", "") for f in frames)
    assert len(fake_upstream.requests) == 1
