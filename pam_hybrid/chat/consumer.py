"""The chat socket: translates frames into runtime calls and answers' chunks back into frames, and nothing else.

Answers stream from tasks of their own (pam_hybrid.runtime.live), so a `cancel` frame or a disconnect is handled at
once, and a socket that reconnects can pick an answer up again where it left off (pam_hybrid.runtime.resume).
"""

from __future__ import annotations

import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from pam_hybrid.chat import protocol
from pam_hybrid.chat.backpressure import Outbox, WriteGauge, write_gauge
from pam_hybrid.conf import pam_settings
from pam_hybrid.conversations.routing_signals import AnswerUnfinished, answer_feedback_set
from pam_hybrid.domain.chunks import StreamChunk
from pam_hybrid.domain.exceptions import BadInput, MessageNotFound
from pam_hybrid.gateway.stream import ChatRequest
from pam_hybrid.runtime import relay, sockets
from pam_hybrid.runtime.admission import Refusal, answer_admit
from pam_hybrid.runtime.following import Followed, Follower, not_found_chunk
from pam_hybrid.runtime.resume import answer_resume
from pam_hybrid.runtime.standing import signed_out_chunk, still_signed_in

CLOSE_UNAUTHENTICATED = 4401


class ChatConsumer(AsyncWebsocketConsumer):
    following: Followed | None = None
    follower: Follower | None = None
    opened: sockets.OpenSocket | None = None
    gauge: WriteGauge | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        self.gauge = write_gauge(self.base_send)
        if user is None or not user.is_authenticated:
            # Accept first: a close before accepting is an HTTP 403 that browsers cannot tell from any other failure.
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        key = getattr(self.scope.get("session"), "session_key", None)
        opened = await sockets.socket_open(self, user_id=user.pk, session_key=key)
        if isinstance(opened, sockets.Refused):
            await self.close(code=opened.code)
        else:
            self.opened = opened
            if not await still_signed_in(self.scope):  # a change saved before the groups were joined was not heard
                await self.session_ended({})

    async def disconnect(self, code: int) -> None:
        self._unfollow()
        if self.opened is not None:
            await sockets.socket_close(self, self.opened)

    async def user_changed(self, event: dict[str, Any]) -> None:
        """The user's password or `is_active` changed (in any process): a socket no longer signed in is ended."""
        if not await still_signed_in(self.scope):
            await self.session_ended(event)

    async def session_ended(self, event: dict[str, Any]) -> None:
        """The user logged out (here or in another process): stop their answer and stop serving this socket."""
        if self.following is not None:
            self.following.stop("cancelled")
        self._unfollow()
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = protocol.parse_frame(text_data, pam_settings())
        except BadInput as exc:
            await self.send_chunk(protocol.bad_frame_chunk(exc))
            return
        if isinstance(frame, protocol.ControlFrame):
            if frame.type == "ping":
                await self.send(text_data=protocol.PONG)
            elif self.following is not None:
                self.following.stop()
        elif isinstance(frame, (protocol.MessageFrame, protocol.RegenerateFrame)):
            busy = self.following is not None and not self.following.done
            await (self.send_chunk(protocol.busy_chunk()) if busy else self._message(frame))
        elif not await still_signed_in(self.scope):  # before reading any answer back
            await self.send_chunk(signed_out_chunk())
            await self.session_ended({})
        elif isinstance(frame, protocol.ResumeFrame):
            await self._resume(frame.message_id, frame.last_seq)
        else:
            await self._feedback(frame)  # also while an answer streams: it streams from a task of its own

    async def _message(self, frame: protocol.MessageFrame | protocol.RegenerateFrame) -> None:
        if isinstance(frame, protocol.RegenerateFrame):
            request = ChatRequest(user=self.scope["user"], content="", route=frame.route,
                                  client_msg_id=frame.client_msg_id, regenerate_of=frame.message_id)
        else:
            request = ChatRequest(user=self.scope["user"], content=frame.content,
                                  conversation_id=frame.conversation_id, route=frame.route,
                                  client_msg_id=frame.client_msg_id, edit_of=frame.edit_of)
        admitted = await answer_admit(request, socket=self, reply_to=self.channel_name, scope=self.scope)
        if isinstance(admitted, Refusal):
            await self.send_chunk(admitted.chunk)
            if admitted.signed_out:
                await self.session_ended({})
            return
        follower = Outbox(self._send_text, self.gauge) if frame.stream else protocol.ResponseFollower(self._send_text)
        await self._follow(admitted, -1, follower)

    async def _resume(self, message_id: uuid.UUID, last_seq: int) -> None:
        answer = await answer_resume(user=self.scope["user"], message_id=message_id, reply_to=self.channel_name)
        if answer is None:
            await self.send_chunk(not_found_chunk())
        else:
            await self._follow(answer, last_seq, Outbox(self._send_text, self.gauge))

    async def _feedback(self, frame: protocol.FeedbackFrame) -> None:
        try:
            value = await database_sync_to_async(answer_feedback_set)(user=self.scope["user"],
                                                                      message_id=frame.message_id, value=frame.value)
        except (MessageNotFound, AnswerUnfinished) as exc:
            await self.send(text_data=protocol.feedback_frame(frame.message_id, None, exc))
        else:
            await self.send(text_data=protocol.feedback_frame(frame.message_id, value))

    async def answer_frames(self, event: dict[str, Any]) -> None:
        """Frames of an answer followed in another process (see pam_hybrid.runtime.relay)."""
        if isinstance(self.following, relay.RemoteAnswer):
            await self.following.receive(event)

    async def answer_gone(self, event: dict[str, Any]) -> None:
        """The answer followed in another process ended before we asked: what was saved has the rest."""
        if isinstance(self.following, relay.RemoteAnswer):
            await self.following.gone(event)

    async def _follow(self, answer: Followed, last_seq: int, follower: Follower) -> None:
        self._unfollow()
        self.following, self.follower = answer, follower
        await answer.follow(follower, last_seq)

    def _unfollow(self) -> None:
        if self.following is not None and self.follower is not None:
            self.following.unfollow(self.follower)
        self.following = self.follower = None

    async def send_chunk(self, chunk: StreamChunk) -> None:
        await self.send(text_data=chunk.frame_text())

    async def _send_text(self, text: str) -> None:
        await self.send(text_data=text)
