"""The chat socket driven in-process with channels' WebsocketCommunicator: connect, send a message, read frames."""

from __future__ import annotations

from typing import Any

from channels.testing import WebsocketCommunicator

from pam_hybrid.chat.consumer import ChatConsumer

SIMPLE = "What is the capital of France?"
"""A question the classifier routes to the simple model."""


async def connect(user: Any) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


def message(content: str = SIMPLE, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "content": content, "conversation_id": None, "stream": True, "route": "auto",
            "client_msg_id": "c1", **extra}


async def receive_until_done(communicator: WebsocketCommunicator, wait_s: float = 10) -> list[dict[str, Any]]:
    """Frames up to and including the answer's `end` or `error` chunk."""
    frames = []
    while True:
        frame = await communicator.receive_json_from(timeout=wait_s)
        frames.append(frame)
        if frame.get("chunk_type") in ("end", "error") or frame.get("type") == "response":
            return frames


def text_of(frames: list[dict[str, Any]]) -> str:
    return "".join(f["content"] for f in frames if f.get("chunk_type") == "token")


async def stop_after_first_token(communicator: WebsocketCommunicator,
                                 sent: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Sends `sent`, waits for its answer's start and first token, then stops it as the page's Stop button does;
    returns the start chunk and the frames after the stop, up to the answer's end."""
    await communicator.send_json_to(sent)
    start = await communicator.receive_json_from(timeout=5)
    assert start["chunk_type"] == "start"
    assert (await communicator.receive_json_from(timeout=5))["chunk_type"] == "token"
    await communicator.send_json_to({"type": "cancel"})
    return start, await receive_until_done(communicator)


async def answer_frames(user: Any, sent: dict[str, Any]) -> list[dict[str, Any]]:
    """`sent` on a fresh socket of `user`'s: the frames of its answer, up to the end; the socket is then closed."""
    communicator = await connect(user)
    await communicator.send_json_to(sent)
    frames = await receive_until_done(communicator)
    await communicator.disconnect()
    return frames
