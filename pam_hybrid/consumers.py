"""The chat socket: translates frames into gateway requests and streams chunks back, and does nothing else.

Each answer streams from a task of its own, so a `cancel` frame or a disconnect is handled at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from pam_hybrid.conf import pam_settings
from pam_hybrid.core.chunks import StreamChunk
from pam_hybrid.core.gateway import AnswerStream, ChatRequest, answer_metadata, prepare_providers
from pam_hybrid.exceptions import BadInput
from pam_hybrid.frames import ControlFrame, MessageFrame, parse_frame

CLOSE_UNAUTHENTICATED = 4401


class ChatConsumer(AsyncWebsocketConsumer):
    answer_task: asyncio.Task[None] | None = None
    answer_stream: AnswerStream | None = None
    warm_up: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            # Accept first: a close before accepting is an HTTP 403 that browsers cannot tell from any other failure.
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        # While the user types, build the SDK clients so the first answer does not pay for them.
        self.warm_up = asyncio.create_task(prepare_providers())

    async def disconnect(self, code: int) -> None:
        if self.warm_up is not None:
            self.warm_up.cancel()
        await self._stop_answer(notify=False)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = parse_frame(text_data, pam_settings())
        except BadInput as exc:
            await self._send_chunk(StreamChunk("error", exc.user_message, {"code": "bad_frame"}))
            return
        if isinstance(frame, ControlFrame):
            if frame.type == "ping":
                await self._send_json({"type": "pong"})
            else:
                await self._stop_answer(notify=True)
            return
        if self.answer_task is not None and not self.answer_task.done():
            await self._send_chunk(StreamChunk(
                "error", "An answer is still streaming: wait for it or stop it first.", {"code": "busy"}
            ))
            return
        self.answer_stream = None
        self.answer_task = asyncio.create_task(self._answer(frame))

    async def _answer(self, frame: MessageFrame) -> None:
        request = ChatRequest(
            user=self.scope["user"],
            content=frame.content,
            conversation_id=frame.conversation_id,
            route=frame.route,  # type: ignore[arg-type]
            client_msg_id=frame.client_msg_id,
        )
        parts: list[str] = []
        self.answer_stream = AnswerStream(request)
        async with contextlib.aclosing(self.answer_stream.chunks()) as chunks:
            async for chunk in chunks:
                if frame.stream:
                    await self._send_chunk(chunk)
                elif chunk.chunk_type == "token":
                    parts.append(chunk.content)
                elif chunk.chunk_type == "end":
                    await self._send_json({"type": "response", "content": "".join(parts), "metadata": chunk.metadata})
                elif chunk.chunk_type == "error":
                    await self._send_chunk(chunk)

    async def _stop_answer(self, *, notify: bool) -> None:
        """Cancel the answer in flight (its partial text is saved); on a user's stop, tell the client how it ended."""
        task, self.answer_task = self.answer_task, None
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if not notify:
            return
        answer = self.answer_stream.answer if self.answer_stream else None
        if answer is None:
            await self._send_chunk(StreamChunk("error", "Stopped before the answer began.", {"code": "cancelled"}))
        else:
            await self._send_chunk(StreamChunk("end", "", answer_metadata(answer)))

    async def _send_chunk(self, chunk: StreamChunk) -> None:
        await self._send_json(chunk.to_frame())

    async def _send_json(self, payload: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(payload, ensure_ascii=False))
