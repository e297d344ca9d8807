"""Per-process upkeep of answers in flight: every checkpoint interval, save the text of this process's live
answers (a heartbeat for their rows), and mark rows left `streaming` by a process that died as interrupted.

Started by the first socket a process accepts, so the first sweep runs at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from channels.db import database_sync_to_async

from pam_hybrid import pricing
from pam_hybrid.conf import pam_settings
from pam_hybrid.conversations import services
from pam_hybrid.process import process_state
from pam_hybrid.runtime import live, owners, shutdown

logger = logging.getLogger(__name__)

STALE_AFTER_INTERVALS = 3
STALE_AFTER_MIN_S = 30.0

class _Upkeep:
    """This process's upkeep task."""

    task: asyncio.Task[None] | None = None


def ensure_running() -> None:
    state = process_state()
    shutdown.install()
    upkeep = state.part(_Upkeep)
    if upkeep.task is None or upkeep.task.done():
        upkeep.task = state.loop.create_task(_run(), name="pam-maintenance")


async def tick() -> int:
    """One round: checkpoint this process's live answers, then sweep dead ones. Returns how many were swept."""
    interval_s = pam_settings().checkpoint_interval_ms / 1000
    running = list(live.live_answers())
    await owners.renew([a.message_id for a in running])
    swept = await database_sync_to_async(services.checkpoint_and_sweep)(
        answers=[a.stream.answer for a in running if a.stream.answer is not None and a.stream.row_saved],
        live_ids={a.message_id for a in running},
        # Other processes' heartbeats can be late too (a busy database thread): never less than half a minute.
        older_than=timedelta(seconds=max(interval_s * STALE_AFTER_INTERVALS, STALE_AFTER_MIN_S)),
    )
    if swept:
        logger.warning("marked %d answers left streaming by a stopped process as interrupted", swept)
    await database_sync_to_async(pricing.refresh_overrides)()  # staff price changes reach this process
    return swept


async def _run() -> None:
    while True:
        try:
            await tick()
        except Exception:
            logger.exception("answer checkpoint/sweep failed")
        await asyncio.sleep(pam_settings().checkpoint_interval_ms / 1000)
