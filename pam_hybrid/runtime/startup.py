"""Starting this process's runtime, from the first socket it accepts (so at start-up, on the server's own loop):
the upkeep task and the graceful SIGTERM handler, and the relay's channel when answers are shared across
processes. Each later socket finds it running and is only noted (to be closed at shutdown)."""

from __future__ import annotations

import asyncio

from pam_hybrid.gateway.stream import prepare_providers
from pam_hybrid.runtime import maintenance, relay, shutdown


async def socket_opened(socket: shutdown.Socket) -> asyncio.Task[None]:
    """Note a new socket and make sure the runtime runs; returns the task warming the SDK clients up (so the
    first answer does not pay for building them), which the socket cancels if it closes first."""
    maintenance.ensure_running()
    shutdown.track(socket)
    await relay.ensure_listening()
    return asyncio.create_task(prepare_providers())
