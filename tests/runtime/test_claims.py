"""A re-sent `client_msg_id` never runs twice, whatever Redis does: without Redis (unset, or unreachable) an answer
already saved for it holds the claim; and an answer whose process died is taken as it was saved, at once."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest
from django.utils import timezone

from fake_upstream import FakeUpstream, Scenario
from pam_hybrid.models import Conversation, Message
from pam_hybrid.redis_client import redis_client, redis_key
from pam_hybrid.runtime import claims
from tests.support.answers import settled_answer
from tests.support.sockets import connect, message, receive_until_done, text_of

pytestmark = [pytest.mark.django_db(transaction=True)]

WORDS = "one two three four five six seven eight nine ten eleven twelve"
needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="owners of answers are kept in Redis")


async def _answered(user: Any, fake_upstream: FakeUpstream, client_msg_id: str) -> list[dict[str, Any]]:
    fake_upstream.enqueue(Scenario(text=WORDS))
    communicator = await connect(user)
    await communicator.send_json_to(message(client_msg_id=client_msg_id))
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    await settled_answer(frames[0]["metadata"]["message_id"])
    return frames


async def test_without_redis_a_resend_after_a_restart_gets_the_saved_answer(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.REDIS_URL = ""
    frames = await _answered(user, fake_upstream, "restart-1")
    claims._memory.clear()  # what a restarted process remembers of its claims

    communicator = await connect(user)
    await communicator.send_json_to(message(client_msg_id="restart-1"))
    again = await receive_until_done(communicator)
    await communicator.disconnect()

    assert text_of(again) == WORDS and again[-1] == frames[-1]
    assert len(fake_upstream.requests) == 1
    assert await Message.objects.filter(role="assistant").acount() == 1


async def test_with_redis_unreachable_the_claim_falls_back_to_the_saved_answer(
    user: Any, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.REDIS_URL = ""
    frames = await _answered(user, fake_upstream, "down-1")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: every command fails

    held = await claims.claim(user, "down-1", uuid.uuid4())
    fresh = await claims.claim(user, "down-2", uuid.uuid4())

    assert held == uuid.UUID(frames[0]["metadata"]["message_id"])
    assert fresh is None


async def _orphan(user: Any, content: str) -> Message:
    """An answer left streaming by a process that died, checkpointed with `content`."""
    conversation = await Conversation.objects.acreate(owner=user, title="t")
    question = await Message.objects.acreate(conversation=conversation, role="user", content="q",
                                             client_msg_id="dead-1")
    log: list[Any] = [{"type": "stream", "chunk_type": "start", "content": "", "metadata": {"seq": 0}}]
    log.append(len(content))
    return await Message.objects.acreate(
        conversation=conversation, role="assistant", status="streaming", content=content, stream_log=log,
        reply_to=question, parent=question, provider="openai", model="gpt-4o-mini", client_msg_id="dead-1",
        updated_at=timezone.now(),
    )


@needs_redis
async def test_a_resend_of_an_answer_whose_process_is_dead_gets_its_saved_partial_at_once(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    orphan = await _orphan(user, "half an ans")
    client = redis_client()
    assert client is not None
    # Its claim and owner entry outlive the dead process; its heartbeat does not.
    await client.set(redis_key(f"claim:{user.pk}:dead-1"), str(orphan.id))
    await client.set(redis_key(f"answer:{orphan.id}"), "specific.dead!process")

    communicator = await connect(user)
    started = time.monotonic()
    await communicator.send_json_to(message(client_msg_id="dead-1"))
    frames = await receive_until_done(communicator, wait_s=5)
    waited_s = time.monotonic() - started
    await communicator.disconnect()

    assert waited_s < 2, waited_s
    assert text_of(frames) == "half an ans"
    assert frames[-1]["chunk_type"] == "error"
    assert frames[-1]["metadata"]["code"] == "interrupted" and frames[-1]["metadata"]["status"] == "partial"
    await orphan.arefresh_from_db()
    assert orphan.status == "partial" and orphan.finish_reason == "interrupted"
    assert await client.get(redis_key(f"answer:{orphan.id}")) is None
    assert fake_upstream.requests == []
    assert await Message.objects.filter(role="assistant").acount() == 1


@needs_redis
async def test_a_resend_whose_dead_process_saved_nothing_runs_once(
    user: Any, fake_upstream: FakeUpstream
) -> None:
    dead = uuid.uuid4()
    client = redis_client()
    assert client is not None
    await client.set(redis_key(f"claim:{user.pk}:never-saved"), str(dead))
    await client.set(redis_key(f"answer:{dead}"), "specific.dead!process")
    fake_upstream.enqueue(Scenario(text=WORDS))

    communicator = await connect(user)
    await communicator.send_json_to(message(client_msg_id="never-saved"))
    frames = await receive_until_done(communicator)
    await communicator.send_json_to(message(client_msg_id="never-saved"))
    again = await receive_until_done(communicator)
    await communicator.disconnect()

    assert text_of(frames) == WORDS and frames[-1]["metadata"]["status"] == "complete"
    assert again[-1] == frames[-1]
    assert await client.get(redis_key(f"claim:{user.pk}:never-saved")) == frames[0]["metadata"]["message_id"].encode()
    assert len(fake_upstream.requests) == 1
    assert await Message.objects.filter(role="assistant").acount() == 1
