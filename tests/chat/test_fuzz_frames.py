"""Property-based fuzzing of the chat socket's frames: whatever a client sends (random JSON, wrong types in every
field, huge and deeply nested values, binary frames, unicode edge cases), every frame gets a valid reply (a `pong`,
an `error` chunk with a known code and a message for people, or a whole answer), the consumer never raises, and
the same socket still answers a `ping` afterwards.

What each frame should get is decided by `expected`, which applies the protocol of README.md ("The socket
protocol") to the frame exactly as the server will parse it. Hypothesis runs synchronously; every example runs on
one event loop kept for the whole test (asyncio.Runner), so the SDK clients and in-process state live across
examples as they do in a server process. Each example gets a user of its own, so per-user claims and limits never
carry over from one example to the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from fake_upstream import FakeUpstream
from pam_hybrid.chat.consumer import ChatConsumer
from pam_hybrid.models import Message
from pam_hybrid.runtime import live, owners

pytestmark = [pytest.mark.django_db(transaction=True)]

MAX_CHARS = 1000
MAX_BYTES = 16 * 1024
ROUTES = ("auto", "simple", "complex")
CLIENT_MSG_ID_MAX = 100
KNOWN_CODES = frozenset({
    "bad_frame", "not_found", "conversation_not_found", "busy", "rate_limited", "too_many_answers", "spend_cap",
    "shutting_down",
})
PING = {"type": "ping"}
PONG = {"type": "pong"}
REPLY_TIMEOUT_S = 10

# Outcomes of one frame (see `outcome`).
BAD = frozenset({"error:bad_frame"})
NOT_FOUND = frozenset({"error:not_found"})
ANSWER = frozenset({"answer"})
GOT_PONG = frozenset({"pong"})
SILENT = frozenset({"silent"})
CONVERSATION_NOT_FOUND = frozenset({"error:conversation_not_found"})

# Placeholders replaced, when the frame is sent, by the id of an answer or conversation made earlier in the same
# example (or by a fresh id when there is none yet).
LAST_ANSWER = "$answer"
LAST_CONVERSATION = "$conversation"

# Text a server cannot store (PostgreSQL refuses NUL) or send on (an unpaired surrogate has no UTF-8 form; a JSON
# escape such as "\ud800" decodes to one): a message carrying it is refused as a bad frame.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# What an error meant for people must not look like.
NOT_FOR_PEOPLE = re.compile(r"Traceback|Exception|Error\b|errno|line \d+ column|File \"|0x[0-9a-f]{4}")

FUZZ = hypothesis_settings(max_examples=150, deadline=None, derandomize=True, database=None, print_blob=False)


# --- strategies ----------------------------------------------------------------------------------------------------

EDGE_STRINGS = (
    "\x00", "\ud800", "\udfff", "\ud83d", "\ude00", "\udbff\udc00",  # NUL, lone surrogates, a pair split in two
    "e\u0301", "a\u0300\u0301\u0302\u0303\u0304", "\u0301",  # combining marks, with and without a base
    "\u202eevil\u202c", "\u200f\u0645\u0631\u062d\u0628\u0627", "\u05e9\u05dc\u05d5\u05dd",  # RTL
    "😀", "👩\u200d👩\u200d👧", "🇫🇷", "\U0010ffff", "\ufeff", "\ufffd", "\uffff",  # emoji, ZWJ, flags, extremes
    "\u2028", "\u2029", "\r\n", "\t", "\x1b[31m", "\x7f", "\x85",  # separators and control characters
    '"', "\\", "\\u0000", "</script>", "{{ x }}", "%s", "中文",
)
edge_pieces = st.one_of(
    st.sampled_from(EDGE_STRINGS), st.characters(), st.characters(categories=["Cs", "Cc", "Cf", "Mn", "Zl", "Zp"]),
    st.text(max_size=6),
)
edge_text = st.lists(edge_pieces, max_size=12).map("".join)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**30, max_value=10**300),
    st.floats(allow_nan=True, allow_infinity=True),  # NaN and ±Infinity are written as such by json.dumps
    edge_text,
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(edge_text, inner, max_size=4),
    max_leaves=12,
)


@dataclass(frozen=True)
class Frame:
    """A frame to send: JSON (dumped with or without ASCII escapes), raw text, or bytes.

    `expect` overrides `expected` where the outcome depends on the parser's limits rather than on the protocol
    (nesting near the recursion limit)."""

    value: Any = None
    ascii_escapes: bool = True
    text: str | None = None
    data: bytes | None = None
    expect: frozenset[str] | None = None


def json_frames(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Frame]:
    return st.builds(Frame, value=values, ascii_escapes=st.booleans())


message_frames = st.fixed_dictionaries(
    {"type": st.just("message"), "content": st.one_of(edge_text, st.text(min_size=1, max_size=40))},
    optional={
        "conversation_id": st.one_of(st.none(), st.just(""), st.just(LAST_CONVERSATION), st.uuids().map(str),
                                     edge_text),
        "stream": st.one_of(st.just(True), json_values),
        "route": st.one_of(st.sampled_from(ROUTES), edge_text),
        "client_msg_id": st.one_of(st.uuids().map(str), st.just(""), edge_text),
    },
)
resume_frames = st.fixed_dictionaries(
    {"type": st.just("resume"), "message_id": st.one_of(st.just(LAST_ANSWER), st.uuids().map(str), edge_text)},
    optional={"last_seq": st.one_of(st.integers(min_value=-3, max_value=12), json_values)},
)
unicode_messages = st.fixed_dictionaries({
    "type": st.just("message"),
    "content": st.lists(edge_pieces, min_size=1, max_size=10).map("".join),
    "stream": st.booleans(),
    "route": st.sampled_from(ROUTES),
    "client_msg_id": st.one_of(st.just(""), st.uuids().map(str), edge_text),
    "conversation_id": st.one_of(st.none(), st.just(LAST_CONVERSATION), edge_text),
})
unicode_frames = st.one_of(
    json_frames(unicode_messages), json_frames(unicode_messages),
    json_frames(st.fixed_dictionaries({"type": st.just("resume"), "message_id": st.just(LAST_ANSWER),
                                       "last_seq": st.integers(-1, 3)})),
)
control_frames = st.fixed_dictionaries({"type": st.sampled_from(["ping", "cancel"])})
FIELDS = ("type", "content", "conversation_id", "route", "stream", "client_msg_id", "message_id", "last_seq")


@st.composite
def protocol_frames(draw: st.DrawFn) -> Frame:
    """A frame shaped like the protocol's, then perhaps one field replaced by any JSON value (usually of the wrong
    type), one field dropped, and unknown fields added."""
    frame: dict[str, Any] = dict(draw(st.one_of(message_frames, message_frames, resume_frames, control_frames)))
    if draw(st.booleans()):
        frame[draw(st.sampled_from(FIELDS))] = draw(json_values)
    if draw(st.integers(0, 4)) == 0:
        frame.pop(draw(st.sampled_from(FIELDS)), None)
    for key, value in draw(st.dictionaries(edge_text, json_values, max_size=2)).items():
        frame.setdefault(key, value)
    return Frame(value=frame, ascii_escapes=draw(st.booleans()))


def deep(depth: int, opener: str, closer: str, leaf: str = "") -> str:
    """JSON nested `depth` levels deep, written by hand (json.dumps itself would recurse)."""
    return opener * depth + leaf + closer * depth


@st.composite
def oversized_frames(draw: st.DrawFn) -> Frame:
    """Frames around the size limits, deeply nested frames, and numbers longer than Python reads by default."""
    kind = draw(st.sampled_from(["content", "frame", "nested", "nested_ping", "unclosed", "long_int"]))
    if kind == "content":  # content of about PAM_MAX_MESSAGE_CHARS characters (of 1 to 4 UTF-8 bytes each)
        char = draw(st.sampled_from(["a", "é", "中", "😀", "e\u0301", "a "]))
        length = MAX_CHARS + draw(st.integers(-2, 2))
        content = (char * length)[:length]
        return Frame(value={"type": "message", "content": content, "stream": draw(st.booleans())},
                     ascii_escapes=draw(st.booleans()))
    if kind == "frame":  # a frame of about PAM_MAX_FRAME_BYTES bytes, padded by an unknown field
        base = draw(st.sampled_from([PING, {"type": "message", "content": "hi", "stream": True},
                                     {"type": "cancel"}]))
        pad_char = draw(st.sampled_from(["x", "é", "😀"]))
        size_without_pad = len(json.dumps({**base, "pad": ""}, ensure_ascii=False).encode())
        room = (MAX_BYTES - size_without_pad) // len(pad_char.encode())
        padded = {**base, "pad": pad_char * (room + draw(st.integers(-1, 1)))}
        return Frame(value=padded, ascii_escapes=False)
    depth = draw(st.sampled_from([10, 900, 990, 1000, 1100, 3000, 5000, 8000]))
    if kind == "nested":
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"type":"ping","x":', "}")]))
        text = deep(min(depth, MAX_BYTES // len(opener) - 1), opener, closer, "0")
        return Frame(text=text, expect=GOT_PONG | BAD if "ping" in opener else BAD)
    if kind == "nested_ping":  # a ping carrying a deep value: a pong if the parser copes, else a bad frame
        return Frame(text='{"type":"ping","x":' + deep(depth, "[", "]") + "}", expect=GOT_PONG | BAD)
    if kind == "unclosed":
        return Frame(text=draw(st.sampled_from(['{"type":"ping","x":', "", "{"])) + "[" * depth)
    digits = draw(st.sampled_from([20, 4299, 4300, 4301, 5000, 12000]))
    number = draw(st.sampled_from(["", "-"])) + "9" * digits
    template = draw(st.sampled_from([
        '{"type":"ping","n":N}', '{"type":"message","content":N,"stream":true}',
        '{"type":"resume","message_id":"' + str(uuid.UUID(int=1)) + '","last_seq":N}',
        '{"type":"message","content":"hi","stream":true,"route":N}', "[N]", "N",
    ]))
    return Frame(text=template.replace("N", number))


arbitrary_frames = st.one_of(
    json_frames(json_values),
    json_frames(st.dictionaries(edge_text, json_values, max_size=5)),
    st.builds(Frame, text=st.one_of(edge_text, st.text(max_size=50))),
    st.builds(Frame, data=st.one_of(st.binary(max_size=64), st.just(json.dumps(PING).encode()), st.just(b""))),
)


# --- what a frame should get ----------------------------------------------------------------------------------------


@dataclass
class Example:
    """What one example's socket has done so far: the answers it got, by id, and their conversations."""

    final_seq: dict[str, int] = field(default_factory=dict)
    conversations: list[str] = field(default_factory=list)
    answered_client_ids: set[str] = field(default_factory=set)

    def resolve(self, value: Any) -> Any:
        if value == LAST_ANSWER:
            return list(self.final_seq)[-1] if self.final_seq else str(uuid.uuid4())
        if value == LAST_CONVERSATION:
            return self.conversations[-1] if self.conversations else str(uuid.uuid4())
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        return value


def expected(payload: str | bytes, example: Example) -> frozenset[str]:
    """The outcomes the protocol allows for this frame."""
    if isinstance(payload, bytes) or len(payload.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return BAD
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return BAD
    if not isinstance(data, dict):
        return BAD
    kind = data.get("type")
    if kind == "ping":
        return GOT_PONG
    if kind == "cancel":
        return SILENT  # nothing to stop: nothing to say
    if kind == "resume":
        return _expected_resume(data, example)
    if kind == "message":
        return _expected_message(data, example)
    return BAD


def _expected_resume(data: dict[str, Any], example: Example) -> frozenset[str]:
    message_id, last_seq = data.get("message_id"), data.get("last_seq", -1)
    final_seq = example.final_seq.get(message_id) if isinstance(message_id, str) else None
    if final_seq is None:
        return BAD | NOT_FOUND  # not an id at all, or no answer of this user's
    if isinstance(last_seq, bool) or not isinstance(last_seq, int) or last_seq < -1:
        return BAD
    return ANSWER if last_seq < final_seq else SILENT  # the saved answer again, from after last_seq


def _expected_message(data: dict[str, Any], example: Example) -> frozenset[str]:
    content, conversation_id = data.get("content"), data.get("conversation_id")
    client_msg_id = data.get("client_msg_id", "")
    if (not isinstance(content, str) or not content.strip() or len(content) > MAX_CHARS
            or UNSTORABLE.search(content)):
        return BAD
    if conversation_id is not None and not isinstance(conversation_id, str):
        return BAD
    if data.get("route", "auto") not in ROUTES:
        return BAD
    if not isinstance(client_msg_id, str) or len(client_msg_id) > CLIENT_MSG_ID_MAX or UNSTORABLE.search(client_msg_id):
        return BAD
    if client_msg_id in example.answered_client_ids:
        return ANSWER  # the same message again: its answer is replayed, not run twice
    if conversation_id and conversation_id not in example.conversations:
        return CONVERSATION_NOT_FOUND
    return ANSWER


# --- driving the socket ---------------------------------------------------------------------------------------------


async def next_output(communicator: WebsocketCommunicator) -> dict[str, Any]:
    """The application's next message; raises at once what the consumer raised, if it did (receive_output would
    wait for its whole timeout first)."""
    getter = asyncio.ensure_future(communicator.output_queue.get())
    await asyncio.wait({getter, communicator.future}, timeout=REPLY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    if getter.done():
        return getter.result()
    getter.cancel()
    if communicator.future.done():
        communicator.future.result()  # the consumer's exception
        raise AssertionError("the consumer stopped")
    raise AssertionError(f"no reply within {REPLY_TIMEOUT_S} s")


async def next_frame(communicator: WebsocketCommunicator) -> dict[str, Any]:
    """The next frame the server sent, checked to be one a browser can receive and read."""
    output = await next_output(communicator)
    assert output["type"] == "websocket.send", f"the socket was closed: {output}"
    text = output.get("text")
    assert isinstance(text, str) and output.get("bytes") is None, f"not a text frame: {output}"
    text.encode("utf-8")  # a frame with an unpaired surrogate could not be sent on a real socket
    frame = json.loads(text)
    assert isinstance(frame, dict) and frame.get("type") in ("pong", "stream", "response"), frame
    if frame["type"] == "stream":
        check_chunk(frame)
    elif frame["type"] == "response":
        assert isinstance(frame["content"], str) and frame["metadata"]["message_id"], frame
    else:
        assert frame == PONG
    return frame


def check_chunk(frame: dict[str, Any]) -> None:
    assert frame["chunk_type"] in ("start", "token", "tool_call", "tool_result", "end", "error"), frame
    assert isinstance(frame["content"], str) and isinstance(frame["metadata"], dict), frame
    assert isinstance(frame["timestamp"], str) and frame["timestamp"].endswith("Z"), frame
    if frame["chunk_type"] == "error":
        code, content = frame["metadata"].get("code"), frame["content"]
        assert code in KNOWN_CODES or (code == "provider_error" and "seq" in frame["metadata"]), frame
        assert content[:1].isupper() or content[:1] == '"', f"not a sentence: {content!r}"
        assert content.endswith("."), f"not a sentence: {content!r}"
        assert not NOT_FOR_PEOPLE.search(content), f"not written for people: {content!r}"


async def exchange(communicator: WebsocketCommunicator, payload: str | bytes, expect: frozenset[str],
                   may_answer: bool) -> list[dict[str, Any]]:
    """Send the frame, then a ping; the frame's replies are everything before that ping's pong, and the rest of
    an answer it started. Replies to frames are sent in order, except an answer's (it streams from a task)."""
    # Straight to the application: send_to() refuses empty frames, which a real client can send.
    kind = "bytes" if isinstance(payload, bytes) else "text"
    await communicator.send_input({"type": "websocket.receive", kind: payload})
    await communicator.send_json_to(PING)
    replies: list[dict[str, Any]] = []
    pong_seen = False
    while not (pong_seen and settled(replies, may_answer)):
        frame = await next_frame(communicator)
        if frame == PONG and not pong_seen:
            if "pong" in expect and not replies:
                replies.append(frame)  # the frame was a ping: this pong is its own
            else:
                pong_seen = True
            continue
        replies.append(frame)
    return replies


def settled(replies: list[dict[str, Any]], may_answer: bool) -> bool:
    if not replies:
        return not may_answer
    last = replies[-1]
    return last == PONG or last["type"] == "response" or last.get("chunk_type") in ("end", "error")


def outcome(replies: list[dict[str, Any]]) -> str:
    """What the frame got: "silent", "pong", "error:CODE" (an error that belongs to no answer), "answer" (a whole
    answer, streamed or as one `response`) or "answer_failed" (one that ended in an error)."""
    if not replies:
        return "silent"
    if replies == [PONG]:
        return "pong"
    if len(replies) == 1 and replies[0].get("chunk_type") == "error" and "seq" not in replies[0]["metadata"]:
        return f"error:{replies[0]['metadata']['code']}"
    if len(replies) == 1 and replies[0]["type"] == "response":
        return "answer"
    seqs = [frame["metadata"].get("seq") for frame in replies]
    assert all(isinstance(seq, int) for seq in seqs) and seqs == sorted(set(seqs)), f"unnumbered answer: {replies}"
    assert replies[-1]["chunk_type"] in ("end", "error"), replies
    return "answer" if replies[-1]["chunk_type"] == "end" else "answer_failed"


def payload_of(frame: Frame, example: Example) -> str | bytes:
    if frame.data is not None:
        return frame.data
    if frame.text is not None:
        return frame.text
    return json.dumps(example.resolve(frame.value), ensure_ascii=frame.ascii_escapes)


async def note_answer(replies: list[dict[str, Any]], sent: Any, example: Example, fresh: bool) -> None:
    """Remember an answer the frame got (for resumes and follow-ups), and check it was saved as it was sent."""
    end = replies[-1]["metadata"]
    message_id, conversation_id = end["message_id"], end["conversation_id"]
    if replies[0].get("chunk_type") == "start":
        assert replies[0]["metadata"]["message_id"] == message_id
    example.final_seq[message_id] = end["seq"]
    example.conversations.append(conversation_id)
    if isinstance(sent, dict) and isinstance(sent.get("client_msg_id"), str) and sent["client_msg_id"]:
        example.answered_client_ids.add(sent["client_msg_id"])
    saved = await Message.objects.filter(id=message_id).values_list("status", "content").afirst()
    assert saved is not None and saved[0] == "complete", f"answer {message_id} not saved: {saved}"
    if fresh and end["finish_reason"] in ("stop", "end_turn"):
        if replies[-1]["type"] == "response":
            text = replies[-1]["content"]
        else:
            text = "".join(frame["content"] for frame in replies if frame["chunk_type"] == "token")
        assert saved[1] == text, "the answer saved differs from the one streamed"
        assert text == f"Echo from {end['model']}: {sent['content']}", "the message did not reach the model intact"


# --- the harness ----------------------------------------------------------------------------------------------------


class Warnings(logging.Handler):
    """Warnings and errors logged by the app: a fuzzed frame never makes a provider call fail or a save break."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        taken = [f"{r.name}: {r.getMessage()}" for r in self.records]
        self.records.clear()
        return taken


@dataclass
class Fuzzer:
    """Runs one example: a fresh user and socket, every frame's replies checked, then a ping must get its pong."""

    runner: asyncio.Runner
    warnings: Warnings
    examples: int = 0

    def run(self, frames: list[Frame]) -> None:
        self.examples += 1
        self.warnings.take()  # left by an earlier example that failed
        self.runner.run(self._run(frames))
        assert self.warnings.take() == []

    async def _run(self, frames: list[Frame]) -> None:
        user = await sync_to_async(get_user_model().objects.create)(username=f"fuzz-{uuid.uuid4().hex}")
        communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/")
        communicator.scope["user"] = user
        connected, _ = await communicator.connect()
        assert connected
        try:
            example = Example()
            for frame in frames:
                await self._one(communicator, frame, example)
            # The socket is still usable: nothing else is pending, and a ping gets its pong.
            await communicator.send_json_to(PING)
            assert await next_frame(communicator) == PONG
        except BaseException:
            with contextlib.suppress(Exception):
                await communicator.disconnect()
            raise
        await communicator.disconnect()

    async def _one(self, communicator: WebsocketCommunicator, frame: Frame, example: Example) -> None:
        payload = payload_of(frame, example)
        expect = frame.expect or expected(payload, example)
        # A message that may start an answer: its replies come from the answer's task, after the ping's pong.
        message = json.loads(payload) if expect & (ANSWER | CONVERSATION_NOT_FOUND) else None
        if not (isinstance(message, dict) and message.get("type") == "message"):
            message = None
        fresh = message is not None and message.get("client_msg_id") not in example.answered_client_ids
        replies = await exchange(communicator, payload, expect, may_answer=message is not None)
        got = outcome(replies)
        assert got in expect, f"frame {payload[:300]!r} got {got} ({replies[-3:]}), expected one of {sorted(expect)}"
        if got == "answer" and message is not None:
            await note_answer(replies, message, example, fresh)
        await answers_settled()


async def answers_settled() -> None:
    """Wait until the answer a frame started has wound up on the server too: with Redis, it still retracts its
    ownership after its last chunk was sent, and a message arriving meanwhile is refused as `busy` (see
    test_a_message_right_after_an_answer_ended_is_not_refused_as_busy)."""
    for _ in range(1000):
        if not any(True for _ in live.live_answers()):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("an answer is still running 5 s after its last chunk")


@pytest.fixture
def fuzzer(transactional_db: Any, fake_upstream: FakeUpstream, settings: Any) -> Iterator[Fuzzer]:
    """Small limits (so frames around them are quick to build and send), per-user limits out of the way, and the
    providers on the fake upstream, which answers at once."""
    settings.PAM_MAX_MESSAGE_CHARS = MAX_CHARS
    settings.PAM_MAX_FRAME_BYTES = MAX_BYTES
    settings.PAM_RATE_LIMIT_MESSAGES = 1_000_000
    settings.PAM_MAX_CONCURRENT_ANSWERS = 100
    settings.PAM_DAILY_SPEND_CAP_USD = "0"  # no cap
    fake_upstream.ttft_ms = fake_upstream.token_delay_ms = 0
    warnings = Warnings()
    app_logger = logging.getLogger("pam_hybrid")
    app_logger.addHandler(warnings)
    try:
        with asyncio.Runner() as runner:
            yield Fuzzer(runner, warnings)
    finally:
        app_logger.removeHandler(warnings)


# --- the tests ------------------------------------------------------------------------------------------------------


def test_arbitrary_json_text_and_binary_frames(fuzzer: Fuzzer) -> None:
    @FUZZ
    @given(st.lists(arbitrary_frames, min_size=1, max_size=4))
    def check(frames: list[Frame]) -> None:
        fuzzer.run(frames)

    check()
    assert fuzzer.examples >= 10


def test_protocol_frames_with_wrong_types_in_every_field(fuzzer: Fuzzer) -> None:
    @hypothesis_settings(FUZZ, max_examples=300)
    @given(st.lists(protocol_frames(), min_size=1, max_size=5))
    def check(frames: list[Frame]) -> None:
        fuzzer.run(frames)

    check()
    assert fuzzer.examples >= 10


def test_frames_at_the_size_and_depth_limits(fuzzer: Fuzzer) -> None:
    @hypothesis_settings(FUZZ, max_examples=150)
    @given(st.lists(oversized_frames(), min_size=1, max_size=3))
    def check(frames: list[Frame]) -> None:
        fuzzer.run(frames)

    check()
    assert fuzzer.examples >= 10


def test_unicode_edge_cases_in_text_fields(fuzzer: Fuzzer) -> None:
    """Lone surrogates, NUL, RTL marks, emoji, combining marks...: refused if they cannot be stored, otherwise the
    message reaches the model intact and its answer is saved as streamed."""

    @hypothesis_settings(FUZZ, max_examples=200)
    @given(st.lists(unicode_frames, min_size=1, max_size=3))
    def check(frames: list[Frame]) -> None:
        fuzzer.run(frames)

    check()
    assert fuzzer.examples >= 10


def test_a_message_right_after_an_answer_ended_is_not_refused_as_busy(
    user: Any, fuzzer: Fuzzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the fuzzer under PostgreSQL + Redis: an answer's task retracted its ownership (a Redis round trip)
    after its last chunk had gone out, and a message arriving meanwhile was refused as busy. A slow retract made it
    certain; an answer now counts as done once its last chunk is out."""
    retract = owners.retract

    async def slow_retract(message_id: uuid.UUID) -> None:
        await asyncio.sleep(0.05)
        await retract(message_id)

    monkeypatch.setattr(owners, "retract", slow_retract)

    async def scenario() -> None:
        communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/")
        communicator.scope["user"] = user
        assert (await communicator.connect())[0]
        await communicator.send_json_to({"type": "message", "content": "hi", "stream": True,
                                         "conversation_id": str(uuid.UUID(int=7))})
        error = await next_frame(communicator)
        assert error["metadata"]["code"] == "conversation_not_found"
        # The answer has ended (its last chunk came): the socket is free for the next message at once.
        await communicator.send_json_to({"type": "message", "content": "hi", "stream": True})
        reply = await next_frame(communicator)
        await answers_settled()
        await communicator.disconnect()
        assert reply["chunk_type"] == "start", reply

    fuzzer.runner.run(scenario())


@pytest.mark.parametrize("frame", [
    Frame(text='{"type":"ping","n":' + "9" * 5000 + "}"),  # longer than Python converts (4300 digits)
    Frame(value={"type": "message", "content": "hi \ud800 there", "stream": True}),  # an escaped lone surrogate
    Frame(value={"type": "message", "content": "hi \x00 there", "stream": True}),  # NUL: PostgreSQL refuses it
    Frame(value={"type": "message", "content": "hi", "client_msg_id": "\udfff", "stream": True}),
    Frame(value={"type": "message", "content": "hi", "client_msg_id": "a\x00", "stream": True}),
])
def test_frames_found_by_fuzzing(fuzzer: Fuzzer, frame: Frame) -> None:
    """Each crashed the consumer, made providers "fail" (tripping their breakers) or broke the answer's save."""
    fuzzer.run([frame, Frame(value={"type": "message", "content": "still there?", "stream": True})])
