"""`pam_breaker status|reset|open`: the provider circuit breakers from a shell, shared through Redis."""

from __future__ import annotations

import getpass
import io
import os
import shutil
from argparse import ArgumentParser
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from django.core.management.base import CommandError
from django.urls import reverse
from rich import box
from rich.console import Console
from rich.table import Table

from pam_hybrid.breakers import BreakerStatus, BreakerUnavailable
from pam_hybrid.breakers.selectors import breaker_event_list_recent, breaker_provider_names
from pam_hybrid.breakers.wiring import (
    ActionOutcome,
    BreakerAction,
    BreakerReading,
    breaker_act,
    breaker_config,
    breaker_readings,
    breaker_state_shared,
    shared_breaker,
)
from pam_hybrid.conf import pam_settings
from pam_hybrid.management.help import RawHelpCommand
from pam_hybrid.models import BreakerEvent

TABLE_WIDTH = 180
RECENT_EVENTS = 20
EPILOG = """
Each model provider has a circuit breaker. It opens after repeated failures (PAM_BREAKER_FAILURES in a row, or
a failure rate of PAM_BREAKER_FAILURE_RATE over PAM_BREAKER_WINDOW_MS), so that answers skip the provider; after
PAM_BREAKER_COOLDOWN_MS it lets a probe call through, and closes when the probe succeeds.

  status [PROVIDER]  each breaker's state, failure counts, probes in flight, when it opened, when it will probe
                     and who forced it; then the recent transitions recorded in the database
  reset PROVIDER     close the breaker and clear its counts (a forced-open one too)
  open PROVIDER      force the breaker open: no calls to the provider, and no probes, until it is reset
                     (a maintenance switch)

Where the state lives: with REDIS_URL every server process shares it through Redis, and this command reads and
changes it for all of them. Without REDIS_URL each server process keeps its own, which no command can reach:
status then shows only the transitions recorded in the database, and reset and open refuse (exit status 1); use
the admin page /admin/pam/breakers/ instead. Use the same environment as the servers (REDIS_URL,
PAM_REDIS_PREFIX, the API keys that decide which providers are known).

A reset or forced open is recorded as a breaker transition, with who did it ("manage.py pam_breaker (unix user
NAME)") and why (--reason).

Examples:
  manage.py pam_breaker status
  manage.py pam_breaker open anthropic --reason "provider maintenance until 15:00 UTC"
  manage.py pam_breaker reset anthropic
"""



class Command(RawHelpCommand):
    help = "Show the provider circuit breakers, or reset one or force it open."
    epilog = EPILOG

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{status,reset,open}")
        status = actions.add_parser("status", help="show each breaker and the recent transitions")
        status.add_argument("provider", nargs="?", help="only this provider (default: every known one)")
        for name, text in (("reset", "close a breaker and clear its counts"),
                           ("open", "force a breaker open until it is reset")):
            action = actions.add_parser(name, help=text, description=text)
            action.add_argument("provider", help="the provider, e.g. openai or anthropic")
            action.add_argument("--reason", default="", help="why, for the record (optional)")

    def handle(self, *args: Any, action: str, provider: str | None, **options: Any) -> None:
        known = breaker_provider_names(settings=pam_settings())
        if provider is not None and provider not in known:
            raise CommandError(f"Unknown provider {provider!r}. Known providers: {', '.join(known) or 'none'}.")
        if action == "status":
            self._status(provider, known, colour=(self.stdout.isatty() or options["force_color"])
                         and not options["no_color"])
            return
        assert provider is not None
        if not breaker_state_shared():
            raise CommandError(
                "Breaker state lives inside each server process (REDIS_URL is not set), so a command cannot reach "
                f"it: nothing changed. Use the admin page {reverse('pam_breakers')} on the server instead."
            )
        try:
            outcome = async_to_sync(_act)(_breaker_action(action), provider, _actor(), options["reason"])
        except BreakerUnavailable as exc:
            raise CommandError("The shared breaker store (Redis) could not be reached: nothing changed.") from exc
        self.stdout.write(outcome.message)

    def _status(self, provider: str | None, known: list[str], *, colour: bool) -> None:
        buffer = io.StringIO()
        width = shutil.get_terminal_size((TABLE_WIDTH, 24)).columns if self.stdout.isatty() else TABLE_WIDTH
        console = Console(file=buffer, width=width, force_terminal=colour, color_system="auto" if colour else None,
                          highlight=False)
        readings: list[BreakerReading] = []
        if breaker_state_shared():
            readings = async_to_sync(_readings)([provider] if provider else known)
            console.print(_breakers_table(readings))
        else:
            console.print(
                "Breaker state lives inside each server process (REDIS_URL is not set): a command cannot read the "
                f"live state. See the admin page {reverse('pam_breakers')} on the server for it.",
                soft_wrap=False,
            )
        console.print(_events_table(breaker_event_list_recent(provider=provider, limit=RECENT_EVENTS), provider))
        self.stdout.write(buffer.getvalue(), ending="")
        if any(reading.status is None for reading in readings):
            raise CommandError("The shared breaker store (Redis) could not be reached.")


async def _readings(providers: list[str]) -> list[BreakerReading]:
    async with shared_breaker() as breaker:
        return await breaker_readings(breaker, providers)


async def _act(action: BreakerAction, provider: str, actor: str, note: str) -> ActionOutcome:
    async with shared_breaker() as breaker:
        return await breaker_act(breaker, action=action, provider=provider, actor=actor,
                                 origin="with manage.py pam_breaker", note=note)


def _breaker_action(action: str) -> BreakerAction:
    return "reset" if action == "reset" else "open"


def _actor() -> str:
    """Who ran the command, for the record."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        user = f"uid {os.getuid()}"
    return f"manage.py pam_breaker (unix user {user})"


def _when(at: datetime | None) -> str:
    return "—" if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _state(status: BreakerStatus) -> str:
    return "open (forced)" if status.forced_by else status.state.replace("_", "-")


def _breakers_table(readings: list[BreakerReading]) -> Table:
    window_s = breaker_config().window_s
    table = Table(title="Circuit breakers (shared by every server process through Redis)", box=box.SIMPLE_HEAVY,
                  caption=f"in a row: consecutive failures; calls, failed: in the last {window_s:g} s; "
                  "probes: half-open probe calls in flight")
    table.add_column("provider", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for column in ("in a row", "calls", "failed", "probes"):
        table.add_column(column, justify="right", no_wrap=True)
    for column in ("opened at", "will probe at"):
        table.add_column(column, no_wrap=True)
    forced_by = [reading.status.forced_by for reading in readings if reading.status is not None]
    table.add_column("forced by", overflow="fold", min_width=max(map(len, forced_by), default=0))
    for reading in readings:
        status = reading.status
        if status is None:
            table.add_row(reading.provider, "unknown: Redis unreachable", *[""] * 7)
            continue
        retry = _when(status.retry_at) if status.retry_at or not status.forced_by else "not until reset"
        table.add_row(
            reading.provider, _state(status), str(status.consecutive_failures), str(status.window_calls),
            str(status.window_failures), str(status.probes_in_flight), _when(status.opened_at), retry,
            status.forced_by or "—",
        )
    return table


def _events_table(events: list[BreakerEvent], provider: str | None) -> Table:
    title = f"Recent transitions recorded{f' for {provider}' if provider else ''} (newest first)"
    table = Table(title=title, box=box.SIMPLE_HEAVY)
    table.add_column("at", no_wrap=True)
    table.add_column("provider")
    table.add_column("from")
    table.add_column("to")
    table.add_column("reason", overflow="fold")
    table.add_column("by", overflow="fold")
    for event in events:
        table.add_row(_when(event.at), event.provider, event.from_state, event.to_state, event.reason,
                      event.actor or "automatic")
    if not events:
        table.add_row("—", "", "", "", "no transition has been recorded", "")
    return table
