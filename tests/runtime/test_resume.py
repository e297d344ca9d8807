"""Nothing lost across reconnects: sequence numbers, resuming an answer (live or saved), re-sent messages that
are never run twice, a second tab, the resume grace period, and the sweep of answers left by a dead process."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.conversations import services
from pam_hybrid.models import Conversation, Message, UsageRecord
from pam_hybrid.runtime import maintenance
from tests.support.answers import settled_answer
from tests.support.sockets import connect, message, receive_until_done, text_of

pytestmark = [pytest.mark.django_db(transaction=True)]

WORDS = "one two three four five six seven eight nine ten eleven twelve"


def seqs(frames: list[dict[str, Any]]) -> list[int]:
    return [f["metadata"]["seq"] for f in frames]


async def test_every_chunk_of_an_answer_is_numbered_in_order(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text=WORDS))
    communicator = await connect(user)
    await communicator.send_json_to(message())
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    assert seqs(frames) == list(range(len(frames)))
    assert frames[0]["chunk_type"] == "start" and frames[-1]["chunk_type"] == "end"


async def test_reconnect_resumes_the_live_answer_with_exactly_the_rest(user: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.enqueue(Scenario(text=WORDS, token_delay_ms=60))
    first = await connect(user)
    await first.send_json_to(message())
    seen = [await first.receive_json_from(timeout=5) for _ in range(4)]  # start and three tokens
    await first.disconnect()
    await asyncio.sleep(0.3)  # tokens keep coming while nobody follows

    second = await connect(user)
    await second.send_json_to(
        {"type": "resume", "message_id": seen[0]["metadata"]["message_id"], "last_seq": seen[-1]["metadata"]["seq"]}
    )
    rest = await receive_until_done(second)
    await second.disconnect()

    assert seqs(seen + rest) == list(range(len(seen) + len(rest)))
    assert text_of(seen + rest) == WORDS
    assert rest[-1]["chunk_type"] == "end" and rest[-1]["metadata"]["status"] == "complete"
    assert len(fake_upstream.requests) == 1
    answer, _ = await settled_answer(seen[0]["metadata"]["message_id"])
    assert answer.content == WORDS and answer.status == Message.Status.COMPLETE


async def test_resume_after_the_answer_ended_replays_the_rest_from_the_saved_message(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(Scenario(text=WORDS))
    communicator = await connect(user)
    await communicator.send_json_to(message())
    frames = await receive_until_done(communicator)
    message_id = frames[0]["metadata"]["message_id"]
    await settled_answer(message_id)

    await communicator.send_json_to({"type": "resume", "message_id": message_id, "last_seq": 3})
    rest = await receive_until_done(communicator)
    await communicator.send_json_to({"type": "resume", "message_id": message_id, "last_seq": -1})
    everything = await receive_until_done(communicator)
    await communicator.disconnect()

    assert text_of(frames[:4]) + text_of(rest) == WORDS
    assert rest[-1] == frames[-1]  # the same end chunk, metadata and all
    assert rest[0]["metadata"]["seq"] > 3 and rest[-1]["metadata"]["seq"] == frames[-1]["metadata"]["seq"]
    assert everything[0] == frames[0] and text_of(everything) == WORDS and everything[-1] == frames[-1]


async def test_resent_message_joins_the_answer_in_flight_and_is_not_run_twice(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(Scenario(text=WORDS, token_delay_ms=40))
    first = await connect(user)
    await first.send_json_to(message(client_msg_id="m-1"))
    start = await first.receive_json_from(timeout=5)
    await first.disconnect()

    second = await connect(user)
    await second.send_json_to(message(client_msg_id="m-1"))
    frames = await receive_until_done(second)
    assert frames[0] == start and text_of(frames) == WORDS
    await second.send_json_to(message(client_msg_id="m-1"))  # and once more, after it ended
    again = await receive_until_done(second)
    await second.disconnect()

    assert text_of(again) == WORDS and again[-1] == frames[-1]
    assert len(fake_upstream.requests) == 1
    assert await Message.objects.filter(role="user").acount() == 1
    assert await Message.objects.filter(role="assistant").acount() == 1
    assert await UsageRecord.objects.acount() == 1


async def test_a_second_tab_follows_the_same_answer_and_either_can_stop_it(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(Scenario(text=WORDS, token_delay_ms=100))
    tab1, tab2 = await connect(user), await connect(user)
    await tab1.send_json_to(message())
    start = await tab1.receive_json_from(timeout=5)
    await tab1.receive_json_from(timeout=5)
    await tab2.send_json_to({"type": "resume", "message_id": start["metadata"]["message_id"], "last_seq": -1})
    await tab2.receive_json_from(timeout=5)  # start
    await tab2.send_json_to({"type": "cancel"})
    ends = [(await receive_until_done(tab))[-1] for tab in (tab1, tab2)]
    await tab1.disconnect()
    await tab2.disconnect()
    assert ends[0] == ends[1]
    assert ends[0]["chunk_type"] == "end" and ends[0]["metadata"]["finish_reason"] == "cancelled"
    assert await fake_upstream.wait_until(lambda: fake_upstream.active_streams == 0, within=2)


async def test_answer_nobody_resumes_is_stopped_after_the_grace_period(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_RESUME_GRACE_MS = 300
    fake_upstream.enqueue(Scenario(text=WORDS * 5, token_delay_ms=50))
    communicator = await connect(user)
    await communicator.send_json_to(message())
    start = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    await asyncio.sleep(0.15)
    assert fake_upstream.active_streams == 1  # still answering within the grace period

    answer, usage = await settled_answer(start["metadata"]["message_id"])
    assert fake_upstream.active_streams == 0
    assert answer.status == Message.Status.PARTIAL and answer.finish_reason == "disconnected"
    assert usage.outcome == "cancelled" and 0 < len(answer.content) < len(WORDS * 5)


async def test_resuming_an_unknown_or_foreign_answer_is_refused(
    user: Any, other_user: Any, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.enqueue(Scenario(text="private words"))
    owner = await connect(user)
    await owner.send_json_to(message())
    frames = await receive_until_done(owner)
    await owner.disconnect()

    intruder = await connect(other_user)
    for message_id in (frames[0]["metadata"]["message_id"], str(uuid.uuid4())):
        await intruder.send_json_to({"type": "resume", "message_id": message_id, "last_seq": -1})
        refused = await intruder.receive_json_from(timeout=5)
        assert refused["chunk_type"] == "error" and refused["metadata"] == {"code": "not_found"}
        assert "private" not in refused["content"]
    await intruder.send_json_to({"type": "resume", "message_id": "nope", "last_seq": 0})
    bad = await intruder.receive_json_from(timeout=5)
    await intruder.disconnect()
    assert bad["metadata"] == {"code": "bad_frame"}


async def test_live_answers_are_checkpointed_and_dead_ones_swept(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.PAM_CHECKPOINT_INTERVAL_MS = 1000
    # A row left streaming by a process that died: no heartbeat for longer than three intervals.
    conversation = await Conversation.objects.acreate(owner=user, title="t")
    question = await Message.objects.acreate(conversation=conversation, role="user", content="q")
    orphan = await Message.objects.acreate(
        conversation=conversation, role="assistant", status="streaming", content="half an ans",
        reply_to=question, provider="openai", model="gpt-4o-mini",
    )
    await Message.objects.filter(id=orphan.id).aupdate(updated_at=timezone.now() - timedelta(seconds=60))

    fake_upstream.enqueue(Scenario(text=WORDS, token_delay_ms=100))
    communicator = await connect(user)  # a process's first socket starts its upkeep: the start-up sweep
    await communicator.send_json_to(message())
    start = await communicator.receive_json_from(timeout=5)
    for _ in range(3):
        await communicator.receive_json_from(timeout=5)
    swept_again = await maintenance.tick()
    live_row = await Message.objects.aget(id=start["metadata"]["message_id"])
    communicator_frames = await receive_until_done(communicator)
    await communicator.disconnect()

    assert swept_again == 0  # the live answer's row has a fresh heartbeat
    assert live_row.status == "streaming" and WORDS.startswith(live_row.content) and live_row.content
    await orphan.arefresh_from_db()
    assert orphan.status == "partial" and orphan.finish_reason == "interrupted" and orphan.error
    usage = await UsageRecord.objects.aget(message=orphan)
    assert usage.usage_estimated and usage.output_tokens > 0 and usage.user_id == user.pk
    assert communicator_frames[-1]["metadata"]["status"] == "complete"


async def test_sweep_spares_rows_with_a_recent_heartbeat_and_this_processs_own(user: Any) -> None:
    conversation = await Conversation.objects.acreate(owner=user, title="t")
    await Message.objects.acreate(conversation=conversation, role="assistant", status="streaming")
    mine = await Message.objects.acreate(conversation=conversation, role="assistant", status="streaming")
    await Message.objects.filter(id=mine.id).aupdate(updated_at=timezone.now() - timedelta(minutes=5))
    swept = await database_sync_to_async(services.stale_answers_sweep)(
        older_than=timedelta(seconds=15), sparing={mine.id}
    )
    assert swept == 0
    assert await Message.objects.filter(status="streaming").acount() == 2
