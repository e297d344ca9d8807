"""The chat page's reducer (static/pam_hybrid/state.js) in the real Chromium: the answer flow's phases and the effects
each step asks for, with no DOM and no socket. The project has no JavaScript test runner, so the module is imported
from the live server's static files and driven from here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.support.browsing import close_or_kill

pytestmark = [pytest.mark.browser, pytest.mark.live]

STATE_MODULE = "/static/pam_hybrid/state.js"
CLIENT_ID = "0b7c1d2e-0000-4000-8000-000000000001"
MESSAGE_ID = "6f1e2d3c-0000-4000-8000-000000000002"
CONVERSATION_ID = "9a8b7c6d-0000-4000-8000-000000000003"

# Feeds events through reduce from the state the last call left in the page (or a fresh one), checking on the way
# that reduce never changes the state it is given.
REDUCE = """async ({ module, fresh, events }) => {
  const { initialState, reduce } = await import(module);
  let state = fresh ? initialState({ maxChars: 1000 }) : window.__state;
  const steps = [];
  for (const event of events) {
    const before = JSON.stringify(state);
    const result = reduce(state, event);
    if (JSON.stringify(state) !== before) {
      throw new Error(`reduce changed the state it was given on ${event.type}`);
    }
    state = result.state;
    steps.push({ phase: state.phase, effects: result.effects });
  }
  window.__state = state;
  return steps;
}"""

SOCKET_OPEN = {"type": "socketOpen"}
SEND = {"type": "send", "content": "hello", "route": "auto", "clientMsgId": CLIENT_ID}
STOP = {"type": "stop"}


def chunk(chunk_type: str, content: str = "", **metadata: Any) -> dict[str, Any]:
    """A frame from the socket, as the server streams it."""
    frame = {"type": "stream", "chunk_type": chunk_type, "content": content, "metadata": metadata}
    return {"type": "socketFrame", "frame": frame}


START = chunk("start", conversation_id=CONVERSATION_ID, message_id=MESSAGE_ID, model="gpt-4o-mini", seq=0)


class Reducer:
    """reduce in the page, one batch of events at a time; the state carries over between batches."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.fresh = True

    def __call__(self, *events: dict[str, Any]) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = self.page.evaluate(
            REDUCE, {"module": STATE_MODULE, "fresh": self.fresh, "events": list(events)}
        )
        self.fresh = False
        return steps

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.page.evaluate("() => JSON.parse(JSON.stringify(window.__state))")
        return state


def phases(steps: list[dict[str, Any]]) -> list[str]:
    return [step["phase"] for step in steps]


def sent_frames(step: dict[str, Any]) -> list[dict[str, Any]]:
    return [effect["frame"] for effect in step["effects"] if effect["type"] == "send"]


def timers(step: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    return [
        (effect["type"], effect["name"], effect.get("ms"))
        for effect in step["effects"]
        if effect["type"] in ("startTimer", "clearTimer")
    ]


@pytest.fixture
def reducer(chromium: Browser, live_server_url: str) -> Iterator[Reducer]:
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server_url}/accounts/login/")  # any page of the site: the module is imported from its origin
    try:
        yield Reducer(page)
    finally:
        close_or_kill(context)


def test_send_goes_from_idle_to_sent_and_the_first_token_to_streaming(reducer: Reducer) -> None:
    opened, sent, first, second = reducer(SOCKET_OPEN, SEND, chunk("token", "Hel", seq=0), chunk("token", "lo", seq=1))

    assert phases([opened, sent, first, second]) == ["idle", "sent", "streaming", "streaming"]
    assert sent_frames(sent) == [
        {
            "type": "message",
            "content": "hello",
            "conversation_id": None,
            "stream": True,
            "route": "auto",
            "client_msg_id": CLIENT_ID,
        }
    ]
    assert ("startTimer", "stallCheck", 30000) in timers(sent)
    assert {"type": "saveSeq", "seq": 1} in second["effects"]
    state = reducer.state()
    assert state["question"]["status"] == "complete"
    assert state["answer"]["chars"] == len("Hello")


@pytest.mark.parametrize(
    "last",
    [
        chunk("end", conversation_id=CONVERSATION_ID, finish_reason="cancelled", status="partial", seq=2),
        chunk("error", "Stopped.", code="cancelled", seq=2),
    ],
    ids=["end", "error"],
)
def test_stop_goes_from_streaming_to_stopping_and_the_last_chunk_to_idle(
    reducer: Reducer, last: dict[str, Any]
) -> None:
    reducer(SOCKET_OPEN, SEND, START, chunk("token", "Half", seq=1))

    stopping, done = reducer(STOP, last)

    assert phases([stopping, done]) == ["stopping", "idle"]
    assert sent_frames(stopping) == [{"type": "cancel"}]
    assert timers(stopping) == [("startTimer", "cancelGrace", 5000)]
    assert {"type": "forget"} in done["effects"]
    assert sorted(timers(done)) == [("clearTimer", "cancelGrace", None), ("clearTimer", "stallCheck", None)]
    state = reducer.state()
    assert state["record"] is None and state["answer"]["closed"]
    assert state["answer"]["ending"]["kind"] == ("complete" if last["frame"]["chunk_type"] == "end" else "stop")


def test_message_typed_while_disconnected_is_queued_then_sent_on_open(reducer: Reducer) -> None:
    (queued,) = reducer(SEND)

    assert queued["phase"] == "queued"
    assert sent_frames(queued) == []
    assert reducer.state()["question"]["status"] == "queued"

    (opened,) = reducer(SOCKET_OPEN)

    assert opened["phase"] == "sent"
    assert [frame["client_msg_id"] for frame in sent_frames(opened)] == [CLIENT_ID]
    assert reducer.state()["question"]["status"] == "complete"


def test_a_drop_mid_answer_queues_a_resume_after_the_last_frame_shown(reducer: Reducer) -> None:
    reducer(SOCKET_OPEN, SEND, START, chunk("token", "Some", seq=1))

    dropped, retried, reopened, repeat = reducer(
        {"type": "socketClose", "code": 1011},
        {"type": "timer", "name": "reconnect"},
        SOCKET_OPEN,
        chunk("token", "Some", seq=1),
    )

    assert phases([dropped, retried, reopened, repeat]) == ["queued", "queued", "sent", "sent"]
    assert ("startTimer", "reconnect", 500) in timers(dropped)
    assert {"type": "connect"} in retried["effects"]
    assert sent_frames(reopened) == [{"type": "resume", "message_id": MESSAGE_ID, "last_seq": 1}]
    assert reducer.state()["answer"]["chars"] == len("Some")  # the repeated frame was dropped
