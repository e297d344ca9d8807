"""The chat socket: translates frames into gateway requests and follows answers back, and does nothing else.

Answers stream from tasks of their own (pam_hybrid.runtime.live), so a `cancel` frame or a disconnect is
handled at once, and a socket that reconnects can pick an answer up again where it left off.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from pam_hybrid.chat.protocol import ControlFrame, MessageFrame, ResumeFrame, parse_frame
from pam_hybrid.chat.sessions import session_group
from pam_hybrid.conf import pam_settings
from pam_hybrid.conversations import selectors
from pam_hybrid.conversations.services import INTERRUPTED_ERROR
from pam_hybrid.domain.chunks import StreamChunk
from pam_hybrid.domain.exceptions import BadInput
from pam_hybrid.gateway.stream import ChatRequest, prepare_providers
from pam_hybrid.models import Message
from pam_hybrid.runtime import claims, limits, live, maintenance, relay, shutdown
from pam_hybrid.runtime.saved import chunk_from_frame, frames_after

CLOSE_UNAUTHENTICATED = 4401


def _limits_releaser(user_id: object) -> Callable[[live.LiveAnswer], Awaitable[None]]:
    async def release(answer: live.LiveAnswer) -> None:
        """Free the ended answer's place and count its cost against the user's day."""
        cost = answer.stream.answer.cost_usd if answer.stream.answer is not None else None
        await limits.release(user_id, answer.message_id, cost)

    return release


class _LegacyFollower:
    """An old client (`stream: false`): one `response` frame with the whole text, or the error chunk."""

    def __init__(self, consumer: ChatConsumer) -> None:
        self.consumer = consumer
        self.parts: list[str] = []

    async def deliver(self, chunk: StreamChunk, frame_text: str) -> None:
        if chunk.chunk_type == "token":
            self.parts.append(chunk.content)
        elif chunk.chunk_type == "end":
            await self.consumer.send_json_frame(
                {"type": "response", "content": "".join(self.parts), "metadata": chunk.metadata}
            )
        elif chunk.chunk_type == "error":
            await self.consumer.send(text_data=frame_text)


class ChatConsumer(AsyncWebsocketConsumer):
    following: live.LiveAnswer | relay.RemoteAnswer | None = None
    session_group: str | None = None
    follower: Any = None
    warm_up: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            # Accept first: a close before accepting is an HTTP 403 that browsers cannot tell from any other failure.
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.session_group = self._session_group()
        if self.session_group is not None and self.channel_layer is not None:
            await self.channel_layer.group_add(self.session_group, self.channel_name)
        maintenance.ensure_running()
        shutdown.track(self)
        await relay.ensure_listening()
        # While the user types, build the SDK clients so the first answer does not pay for them.
        self.warm_up = asyncio.create_task(prepare_providers())

    async def disconnect(self, code: int) -> None:
        if self.warm_up is not None:
            self.warm_up.cancel()
        self._unfollow()
        if self.session_group is not None and self.channel_layer is not None:
            await self.channel_layer.group_discard(self.session_group, self.channel_name)

    def _session_group(self) -> str | None:
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        return session_group(key) if key else None

    async def session_ended(self, event: dict[str, Any]) -> None:
        """The user logged out (here or in another process): stop their answer and stop serving this socket."""
        if self.following is not None:
            self.following.stop("cancelled")
        self._unfollow()
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def deliver(self, chunk: StreamChunk, frame_text: str) -> None:
        await self.send(text_data=frame_text)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = parse_frame(text_data, pam_settings())
        except BadInput as exc:
            await self.send_chunk(StreamChunk("error", exc.user_message, {"code": "bad_frame"}))
            return
        if isinstance(frame, ControlFrame):
            if frame.type == "ping":
                await self.send_json_frame({"type": "pong"})
            elif self.following is not None:
                self.following.stop()
            return
        if isinstance(frame, ResumeFrame):
            await self._resume(frame.message_id, frame.last_seq, self)
            return
        if self.following is not None and not self.following.done:
            await self.send_chunk(StreamChunk(
                "error", "An answer is still streaming: wait for it or stop it first.", {"code": "busy"}
            ))
            return
        await self._message(frame)

    async def _message(self, frame: MessageFrame) -> None:
        refusal = shutdown.admit(self)
        if refusal is not None:
            await self.send_chunk(refusal)
            return
        user = self.scope["user"]
        follower = self if frame.stream else _LegacyFollower(self)
        request = ChatRequest(
            user=user, content=frame.content, conversation_id=frame.conversation_id,
            route=frame.route,  # type: ignore[arg-type]
            client_msg_id=frame.client_msg_id,
        )
        if frame.client_msg_id:
            held = await claims.claim(user.pk, frame.client_msg_id, request.message_id)
            if held is not None:
                # The same message again (a re-send after a reconnect): follow its answer rather than run it twice.
                if await self._resume(held, -1, follower, quiet=True):
                    return
                await claims.reclaim(user.pk, frame.client_msg_id, request.message_id)
        settings = pam_settings()
        over_limit = await limits.admit(user.pk, request.message_id, settings)
        if over_limit is not None:
            if frame.client_msg_id:
                await claims.release(user.pk, frame.client_msg_id)
            await self.send_chunk(over_limit.chunk())
            return
        # Released before the user sees the answer end, so a message sent straight after it meets the new spend.
        answer = live.start_answer(request, resume_grace_s=settings.resume_grace_ms / 1000,
                                   on_settled=_limits_releaser(user.pk))
        await self._follow(answer, -1, follower)

    async def _resume(self, message_id: uuid.UUID, last_seq: int, follower: Any, *, quiet: bool = False) -> bool:
        """Follow the user's answer from after `last_seq`: live if it streams in this process or another one,
        else from what was saved. False (with a `not_found` error unless quiet) if the user has no such answer."""
        user = self.scope["user"]
        answer = live.live_answer(message_id, user.pk)
        if answer is not None:
            await self._follow(answer, last_seq, follower)
            return True
        owner = await relay.owner_of(message_id)
        if owner is not None:
            self._unfollow()
            remote = relay.RemoteAnswer(owner, message_id, user.pk, self.channel_name, last_seq)
            self.following, self.follower = remote, follower
            await remote.start()
            return True
        return await self._replay_saved(message_id, last_seq, follower, quiet=quiet)

    async def _replay_saved(self, message_id: uuid.UUID, last_seq: int, follower: Any, *, quiet: bool) -> bool:
        saved = await database_sync_to_async(selectors.answer_get_for_user)(
            user=self.scope["user"], message_id=message_id
        )
        if saved is None:
            if not quiet:
                await self.send_chunk(StreamChunk("error", "That answer was not found.", {"code": "not_found"}))
            return False
        self._unfollow()
        for chunk in frames_after(saved.stream_log, saved.content, last_seq):
            await follower.deliver(chunk, live.frame_text(chunk))
        if saved.status == Message.Status.STREAMING:
            # Saved as streaming, yet no process runs it: its process died (the sweep will mark it so).
            interrupted = StreamChunk("error", INTERRUPTED_ERROR, {
                "code": "interrupted", "message_id": str(message_id), "status": "partial" if saved.content else "error",
            })
            await follower.deliver(interrupted, live.frame_text(interrupted))
        return True

    async def answer_frames(self, event: dict[str, Any]) -> None:
        """Frames of an answer followed in another process (see pam_hybrid.runtime.relay)."""
        remote = self.following
        if not isinstance(remote, relay.RemoteAnswer) or str(remote.message_id) != event["message_id"]:
            return
        for text in event["frames"]:
            if self.follower is self:
                await self.send(text_data=text)
            else:
                await self.follower.deliver(chunk_from_frame(json.loads(text)), text)
        remote.seen(event["last_seq"], event["final"])

    async def answer_gone(self, event: dict[str, Any]) -> None:
        """The answer followed in another process ended before we asked: what was saved has the rest."""
        remote = self.following
        if isinstance(remote, relay.RemoteAnswer) and str(remote.message_id) == event["message_id"]:
            self.following = None
            await self._replay_saved(remote.message_id, remote.last_seq, self.follower, quiet=False)

    async def _follow(self, answer: live.LiveAnswer, last_seq: int, follower: Any) -> None:
        self._unfollow()
        self.following, self.follower = answer, follower
        await answer.follow(follower, last_seq)

    def _unfollow(self) -> None:
        if self.following is not None:
            self.following.unfollow(self.follower)
        self.following = self.follower = None

    async def send_chunk(self, chunk: StreamChunk) -> None:
        await self.send(text_data=live.frame_text(chunk))

    async def send_json_frame(self, payload: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(payload, ensure_ascii=False))
