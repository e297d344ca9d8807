"""Starting this process's runtime, from the first socket it accepts (so at start-up, on the server's own loop):
the upkeep task and the graceful SIGTERM handler, and the relay's channel when answers are shared across
processes. Each later socket finds it running and is only noted (to be closed at shutdown)."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async

from pam_hybrid import pricing
from pam_hybrid.gateway.stream import prepare_providers
from pam_hybrid.process import process_state
from pam_hybrid.runtime import maintenance, relay, shutdown


class _WarmUp:
    """This process's warm-up of the SDK clients and the token estimator: one task, not one per socket."""

    task: asyncio.Task[None] | None = None


async def socket_opened(socket: shutdown.Socket) -> asyncio.Task[None]:
    """Note a new socket and make sure the runtime runs; returns the task warming the SDK clients up (so the
    first answer does not pay for building them), which the socket cancels if it closes first (the next socket
    starts it again)."""
    maintenance.ensure_running()
    shutdown.track(socket)
    if not pricing.overrides_loaded():  # before the first answer is priced
        await database_sync_to_async(pricing.refresh_overrides)()
    await relay.ensure_listening()
    warm_up = process_state().part(_WarmUp)
    task = warm_up.task
    if task is None or task.cancelled() or (task.done() and task.exception() is not None):
        task = warm_up.task = asyncio.create_task(prepare_providers())
    return task
