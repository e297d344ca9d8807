"""Graceful shutdown on SIGTERM: refuse new messages, let the answers in flight finish within
`PAM_SHUTDOWN_GRACE_MS`, stop the rest (their partial text is saved), close the sockets so clients reconnect
(to another process), then hand the signal to the server's own handler so it shuts down as usual.

Why a handler of our own: under daphne, Twisted's SIGTERM handler stops the reactor at once and daphne cancels
the consumers only. Answers stream from tasks that no consumer owns (runtime.live): they would vanish, unsaved.
The handler is put in front of the server's lazily, from the first socket (`maintenance.ensure_running`), when
the server's loop is running and its handler is in place to hand over to. A second SIGTERM cuts the wait short
but still lets the stopped answers save. Once handed over, the process has `EXIT_WATCHDOG_S` to exit.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import signal
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol

from pam_hybrid.conf import pam_settings
from pam_hybrid.domain.chunks import StreamChunk
from pam_hybrid.runtime import live
from pam_hybrid.runtime.following import Followed

logger = logging.getLogger(__name__)

CLOSE_SERVICE_RESTART = 1012
CLOSE_SERVICE_RESTART_PRIVATE = 4012
"""The same meaning in the private range: daphne's WebSocket library (autobahn) refuses to send 1012."""
REFUSAL_TEXT = "The server is restarting. Send your message again in a moment."
TICK_S = 0.1
"""How often the drain looks at the answers and sockets; also the least it lasts, so that a message admitted
just before the signal has started its answer when the drain first looks."""
SAVE_WAIT_S = 5.0
"""Longest wait for the stopped answers' saves before the server is let go."""
EXIT_WATCHDOG_S = 5.0
"""How long the server may take to exit once handed the signal. Past it the process writes every thread's stack to
stderr and exits with status 1 (faulthandler): daphne waits for every cancelled consumer to end, and one waiting on a
thread stuck in a database call would otherwise keep a drained process alive until its supervisor's SIGKILL, with no
word of why."""


class Socket(Protocol):
    """What the drain needs of a chat socket: the answer it follows, and a way to close it."""

    @property
    def following(self) -> Followed | None: ...

    async def close(self, code: int | None = None) -> None: ...


SignalHandler = Callable[[int, FrameType | None], Any]


@dataclass
class _Process:
    """This process's shutdown state (one server loop per process)."""

    loop: asyncio.AbstractEventLoop | None = None
    server_handler: SignalHandler | None = None
    draining: bool = False
    hurry: bool = False
    drain_task: asyncio.Task[None] | None = None
    sockets: weakref.WeakSet[Socket] = field(default_factory=weakref.WeakSet)


_process = _Process()


def install() -> None:
    """Put our SIGTERM handler in front of the server's, once; call it from the server's running loop.

    Nothing is installed outside the main thread (runserver's autoreloader serves from a thread, and the
    reloader keeps its signals) nor when no Python handler is there to hand over to (tests, bare asyncio).
    """
    if _process.loop is not None or threading.current_thread() is not threading.main_thread():
        return
    server_handler = signal.getsignal(signal.SIGTERM)
    if not callable(server_handler):
        return
    _process.loop = asyncio.get_running_loop()
    _process.server_handler = server_handler
    signal.signal(signal.SIGTERM, _on_sigterm)
    logger.debug("graceful SIGTERM handler installed in front of %r", server_handler)


def draining() -> bool:
    return _process.draining


def track(socket: Socket) -> None:
    """Note an open socket, to close it (so its client reconnects elsewhere) once its answer is done at shutdown."""
    _process.sockets.add(socket)


def admit(socket: Socket) -> StreamChunk | None:
    """Note a socket about to start an answer (to close it at shutdown); while draining, the chunk refusing it."""
    track(socket)
    if not _process.draining:
        return None
    return StreamChunk("error", REFUSAL_TEXT, {"code": "shutting_down"})


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Runs in the main thread between two bytecodes, possibly inside the loop's own code: only schedule."""
    loop = _process.loop
    assert loop is not None
    try:
        loop.call_soon_threadsafe(_signalled, signum)
    except RuntimeError:  # the loop has closed: nothing is left to drain
        _hand_over(signum)


def _signalled(signum: int) -> None:
    if _process.drain_task is None:
        _process.drain_task = asyncio.get_running_loop().create_task(_drain_then_hand_over(signum),
                                                                    name="pam-shutdown")
    elif not _process.hurry:
        logger.warning("second SIGTERM: stopping the answers still running now")
        _process.hurry = True


async def _drain_then_hand_over(signum: int) -> None:
    try:
        await drain(grace_s=pam_settings().shutdown_grace_ms / 1000)
    finally:
        _hand_over(signum)


def _hand_over(signum: int) -> None:
    """Give SIGTERM back to the server's handler and call it (daphne: the reactor stops, the process exits)."""
    handler = _process.server_handler
    assert handler is not None
    signal.signal(signal.SIGTERM, handler)
    faulthandler.dump_traceback_later(EXIT_WATCHDOG_S, exit=True)
    handler(signum, None)


async def drain(*, grace_s: float) -> None:
    """Refuse new messages, wait up to `grace_s` for the answers in flight, stop and save the rest, and close
    every socket once the answer it follows is over."""
    _process.draining = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    logger.info("shutting down: %d answers in flight, waiting up to %.1f s for them", _count_answers(), grace_s)
    while True:
        await asyncio.sleep(TICK_S)
        await _close_sockets(idle_only=True)
        if _count_answers() == 0 or _process.hurry or loop.time() >= deadline:
            break
    stopping = list(live.live_answers())
    for answer in stopping:
        answer.stop("shutdown")
    if stopping:
        logger.warning("shutting down: stopped %d answers still running; saving their partial text", len(stopping))
        _, unsaved = await asyncio.wait([answer.task for answer in stopping], timeout=SAVE_WAIT_S)
        if unsaved:
            logger.error("shutting down: %d stopped answers were not saved within %.1f s", len(unsaved), SAVE_WAIT_S)
    await _close_sockets(idle_only=False)
    await asyncio.sleep(TICK_S)  # let the transports write the close frames before the server drops them
    logger.info("shutting down: answers settled, handing over to the server")


def _count_answers() -> int:
    return sum(1 for _ in live.live_answers())


async def _close_sockets(*, idle_only: bool) -> None:
    for socket in tuple(_process.sockets):
        answer = socket.following
        if idle_only and answer is not None and not answer.done:
            continue
        _process.sockets.discard(socket)
        await _close(socket)


async def _close(socket: Socket) -> None:
    try:
        await socket.close(CLOSE_SERVICE_RESTART)
    except Exception:
        # daphne 4.2 passes the code to autobahn, which raises for 1012 (only 1000 or 3000-4999) and sends nothing.
        await socket.close(CLOSE_SERVICE_RESTART_PRIVATE)
