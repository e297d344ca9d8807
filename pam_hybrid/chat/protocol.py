"""The socket's protocol, every frame type in one place.

In (client → server), parsed and validated here; anything unusable becomes a BadInput with a message for the user:
`message` (MessageFrame, also an edit), `regenerate` (RegenerateFrame), `resume` (ResumeFrame), `feedback`
(FeedbackFrame: thumbs up or down on an answer), `cancel` and `ping` (ControlFrame).
Out (server → client): `stream` (a StreamChunk, serialised by `StreamChunk.frame_text`: start, token, tool_call,
tool_result, end, error; tokens held back for a reader that fell behind go as one, `coalesced_tokens`), `pong`,
`feedback` (a rating's acknowledgement, `feedback_frame`), and for old clients that send `stream: false` one
`response` (ResponseFollower).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.chunks import StreamChunk
from pam_hybrid.domain.exceptions import BadInput, MessageNotFound, PamError
from pam_hybrid.domain.routes import ROUTE_CHOICES, RouteChoice

CLIENT_MSG_ID_MAX = 100
# NUL (PostgreSQL's text columns refuse it) and unpaired surrogates (a JSON escape such as "\ud800" decodes to one;
# it has no UTF-8 form, so neither the database, the SDKs nor the socket can carry it).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class MessageFrame:
    content: str
    conversation_id: str | None
    stream: bool
    route: RouteChoice
    client_msg_id: str
    edit_of: uuid.UUID | None = None
    """The user message this one is a new version of (an edit)."""


@dataclass(frozen=True, slots=True)
class RegenerateFrame:
    """A new version of the answer `message_id`, to the same user message."""

    message_id: uuid.UUID
    route: RouteChoice
    client_msg_id: str
    stream = True


@dataclass(frozen=True, slots=True)
class ControlFrame:
    type: str  # "cancel" or "ping"


@dataclass(frozen=True, slots=True)
class ResumeFrame:
    """Follow an answer again from the frame after `last_seq` (-1: from its start)."""

    message_id: uuid.UUID
    last_seq: int


@dataclass(frozen=True, slots=True)
class FeedbackFrame:
    """Thumbs up or down on an answer (`value` None clears the rating)."""

    message_id: uuid.UUID
    value: str | None


FEEDBACK_VALUES = ("up", "down", None)

Frame = MessageFrame | RegenerateFrame | ControlFrame | ResumeFrame | FeedbackFrame


def parse_frame(text: str | None, settings: PamSettings) -> Frame:
    if text is None:
        raise BadInput("binary frame", user_message="Binary frames are not supported; send JSON text.")
    if len(text.encode("utf-8", "surrogatepass")) > settings.max_frame_bytes:
        raise BadInput("frame too large", user_message=f"That frame is larger than {settings.max_frame_bytes} bytes.")
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput("invalid json", user_message="That frame is not valid JSON.") from exc
    except (RecursionError, ValueError) as exc:
        # Nesting deeper than the parser's recursion limit, or an integer longer than Python converts (4300 digits).
        raise BadInput(
            "unreadable json", user_message="That frame is nested too deeply or holds too long a number."
        ) from exc
    if not isinstance(data, dict):
        raise BadInput("not an object", user_message="A frame must be a JSON object with a \"type\".")
    kind = data.get("type")
    if kind in ("cancel", "ping"):
        return ControlFrame(type=kind)
    if kind == "resume":
        return _resume_frame(data)
    if kind == "feedback":
        return _feedback_frame(data)
    if kind == "regenerate":
        return RegenerateFrame(
            message_id=_message_id(data, "message_id", "an answer's id"), route=_route(data),
            client_msg_id=_client_msg_id(data),
        )
    if kind != "message":
        raise BadInput("unknown type", user_message="Unknown frame type: use \"message\", \"regenerate\", "
                       "\"resume\", \"feedback\", \"cancel\" or \"ping\".")
    return _message_frame(data, settings)


def _message_id(data: dict[str, Any], key: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(data.get(key)))
    except ValueError as exc:
        raise BadInput(f"bad {key}", user_message=f"\"{key}\" must be {what}.") from exc


def _route(data: dict[str, Any]) -> RouteChoice:
    route = data.get("route", "auto")
    if route not in ROUTE_CHOICES:
        raise BadInput("bad route", user_message="\"route\" must be \"auto\", \"simple\" or \"complex\".")
    return route


def _client_msg_id(data: dict[str, Any]) -> str:
    client_msg_id = data.get("client_msg_id", "")
    if not isinstance(client_msg_id, str) or len(client_msg_id) > CLIENT_MSG_ID_MAX:
        raise BadInput("bad client_msg_id", user_message="\"client_msg_id\" must be a short string.")
    if _UNSTORABLE.search(client_msg_id):
        raise BadInput("unstorable client_msg_id", user_message="\"client_msg_id\" must not contain a NUL or half "
                       "of a character.")
    return client_msg_id


def _resume_frame(data: dict[str, Any]) -> ResumeFrame:
    message_id = _message_id(data, "message_id", "an answer's id")
    last_seq = data.get("last_seq", -1)
    if isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < -1:
        raise BadInput("bad last_seq", user_message="\"last_seq\" must be a whole number, -1 or more.")
    return ResumeFrame(message_id=message_id, last_seq=last_seq)


def _feedback_frame(data: dict[str, Any]) -> FeedbackFrame:
    message_id = _message_id(data, "message_id", "an answer's id")
    if "value" not in data or data["value"] not in FEEDBACK_VALUES:
        raise BadInput("bad feedback value", user_message="\"value\" must be \"up\", \"down\" or null.")
    return FeedbackFrame(message_id=message_id, value=data["value"])


def _message_frame(data: dict[str, Any], settings: PamSettings) -> MessageFrame:
    content = data.get("content")
    if not isinstance(content, str) or not content.strip():
        raise BadInput("content missing", user_message="A message needs some text in \"content\".")
    if len(content) > settings.max_message_chars:
        raise BadInput(
            "content too long",
            user_message=f"That message is too long ({len(content)} characters; the limit is "
            f"{settings.max_message_chars}).",
        )
    if _UNSTORABLE.search(content):
        raise BadInput("unstorable content", user_message="That message contains characters that cannot be sent "
                       "(a NUL, or half of an emoji or other symbol); remove them and send it again.")
    conversation_id = data.get("conversation_id")
    if conversation_id is not None and not isinstance(conversation_id, str):
        raise BadInput("bad conversation_id", user_message="\"conversation_id\" must be a string or null.")
    edit_of = None
    if data.get("edit_of") is not None:
        edit_of = _message_id(data, "edit_of", "the id of the message this one replaces")
        if not conversation_id:
            raise BadInput("edit without conversation", user_message="An edit (\"edit_of\") needs the message's "
                           "\"conversation_id\".")
    return MessageFrame(
        content=content,
        conversation_id=conversation_id or None,
        stream=data.get("stream") is True,
        route=_route(data),
        client_msg_id=_client_msg_id(data),
        edit_of=edit_of,
    )


PONG = json.dumps({"type": "pong"})


def feedback_frame(message_id: uuid.UUID, value: str | None, error: PamError | None = None) -> str:
    """A rating's acknowledgement: the value now stored, or (`error`) why none could be (with a code; an answer not
    found or not finished has none)."""
    frame: dict[str, Any] = {"type": "feedback", "message_id": str(message_id), "value": value}
    if error is not None:
        frame["error"] = error.user_message
        frame["code"] = "not_found" if isinstance(error, MessageNotFound) else "unfinished"
    return json.dumps(frame)


def bad_frame_chunk(exc: BadInput) -> StreamChunk:
    return StreamChunk("error", exc.user_message, {"code": "bad_frame"})


COALESCED_MAX_CHARS = 64 * 1024
"""A coalesced token frame's text at most (unless one token alone is longer): well under the socket's 1 MiB frame
limit."""


def coalesced_tokens(tokens: list[StreamChunk]) -> list[StreamChunk]:
    """Token chunks joined into as few as fit COALESCED_MAX_CHARS, each numbered as the last it holds: a reader that
    resumes after one gets exactly what follows (the browser renders a frame whose `seq` is above the last it saw;
    it does not need every number)."""
    joined: list[StreamChunk] = []
    group: list[StreamChunk] = []
    size = 0
    for token in tokens:
        if group and size + len(token.content) > COALESCED_MAX_CHARS:
            joined.append(_joined(group))
            group, size = [], 0
        group.append(token)
        size += len(token.content)
    if group:
        joined.append(_joined(group))
    return joined


def _joined(tokens: list[StreamChunk]) -> StreamChunk:
    last = tokens[-1]
    return StreamChunk("token", "".join(token.content for token in tokens), {"seq": last.metadata["seq"]},
                       last.timestamp)


def busy_chunk() -> StreamChunk:
    return StreamChunk("error", "An answer is still streaming: wait for it or stop it first.", {"code": "busy"})


class ResponseFollower:
    """An old client (`stream: false`): one `response` frame with the whole text, or the error chunk."""

    def __init__(self, send: Callable[[str], Awaitable[None]]) -> None:
        self.send = send
        self.parts: list[str] = []

    async def deliver(self, chunk: StreamChunk, frame_text: str) -> None:
        if chunk.chunk_type == "token":
            self.parts.append(chunk.content)
        elif chunk.chunk_type == "end":
            await self.send(json.dumps(
                {"type": "response", "content": "".join(self.parts), "metadata": chunk.metadata}, ensure_ascii=False
            ))
        elif chunk.chunk_type == "error":
            await self.send(frame_text)
