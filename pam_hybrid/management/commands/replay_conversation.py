"""replay_conversation: re-run a conversation's user turns through today's gateway and compare the answers."""

from __future__ import annotations

import asyncio
import io
from decimal import Decimal
from typing import Any

from django.core.management.base import CommandError, CommandParser
from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pam_hybrid.conf import pam_settings
from pam_hybrid.domain.routes import ROUTE_CHOICES
from pam_hybrid.gateway.routes import TargetUnavailable
from pam_hybrid.management.help import RawHelpCommand
from pam_hybrid.pricing import refresh_overrides
from pam_hybrid.replay import selectors as replay_selectors
from pam_hybrid.replay.conversation import Figures, ReplayOptions, ReplayPlan, Total, replay_plan, replay_run, total

TABLE_WIDTH = 200
QUESTION_CHARS = 28
NONE = "—"

HELP = """\
Re-run a conversation's user turns, in order, through today's gateway (today's classifier, routes, models and
breakers) and compare each new answer with the one saved then.

The replay is saved as a new conversation, "Replay of <title>", owned by the original's owner and linked to it
(replay_of); it is hidden from the owner's chat sidebar (the admin shows it). Each turn is answered with the replay's
own earlier answers as context, exactly as the owner's next message would be. The chat socket's per-user limits
(answers at once, messages per minute, daily spend cap) do not apply to a replay, and its cost is not counted
against the owner's cap: it is staff spending, with real providers. Try --dry-run first.

The table has one row per user turn: route then -> now, model then -> now, tokens in/out then and now, cost in USD
then and now, time to first token (TTFT, ms) then and now, "similar" (how much of the answer stayed the same:
difflib.SequenceMatcher's ratio of the two answers' text as a percentage, 100% identical, 0% nothing in common) and
the new answer's status. The last row sums tokens and cost ("+ ?" when some cost is unknown). A progress bar runs on
standard error when it is a terminal.

A turn whose provider fails does not stop the replay: its row says error, the reason is printed below the table, and
once every turn has run the command exits with status 1 (the replay is kept).
"""



class Command(RawHelpCommand):
    help = HELP
    color = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("conversation_id", help="The conversation to replay (its id; any user's).")
        parser.add_argument(
            "--route", choices=ROUTE_CHOICES, default="auto",
            help="Force every turn's route, like the chat socket's route field. Default auto: today's classifier "
            "decides per turn.",
        )
        parser.add_argument(
            "--provider", default="",
            help="Force the provider (e.g. openai, anthropic, offline); it must be configured (have its API key). "
            "A forced provider has no fallback: if it fails, the turn fails.",
        )
        parser.add_argument(
            "--model", default="",
            help="Force the model. Without --provider the route's provider keeps serving, so pair it with --route or "
            "--provider when the model belongs to one provider. Default: the model the provider serves its route with.",
        )
        parser.add_argument(
            "--dry-run", action="store_true",
            help="Only classify: print each turn's route then and now and the model that would answer; no model "
            "call, nothing saved, no spend.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.color = bool(options["force_color"] or (self.stdout.isatty() and not options["no_color"]))
        original = replay_selectors.conversation_get(conversation_id=options["conversation_id"])
        if original is None:
            raise CommandError(f"No conversation with id {options['conversation_id']!r}.")
        replay_options = ReplayOptions(route=options["route"], provider=options["provider"], model=options["model"])
        try:
            plan = replay_plan(original=original, options=replay_options, settings=pam_settings())
        except TargetUnavailable as exc:
            raise CommandError(str(exc)) from exc
        if not plan.turns:
            raise CommandError(f"Conversation {original.id} has no user messages: nothing to replay.")
        if options["dry_run"]:
            self._print(_plan_table(plan))
            self.stdout.write(f"Dry run: {len(plan.turns)} turns classified; nothing was sent or saved.")
            return
        self._replay(plan)

    def _replay(self, plan: ReplayPlan) -> None:
        refresh_overrides()  # price the new answers as the server would: at the staff overrides in force
        progress = Progress(
            TextColumn("Replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), transient=True, disable=not self.stderr.isatty(),
        )
        with progress:
            task = progress.add_task("turns", total=len(plan.turns))
            replay = asyncio.run(replay_run(plan, on_turn=lambda _: progress.advance(task)))
        self._print(_replay_table(plan))
        failed = [turn for turn in plan.turns if turn.failed]
        for turn in failed:
            assert turn.now is not None
            self.stdout.write(f"Turn {turn.number} failed: {turn.now.error or 'no answer'}")
        then, now = total(t.then for t in plan.turns), total(t.now for t in plan.turns)
        self.stdout.write(
            f"Replay saved as conversation {replay.id} ({replay.title!r}): {len(plan.turns)} turns, {len(failed)} "
            f"failed. Cost then {_money(then)} USD, now {_money(now)} USD."
        )
        if failed:
            raise CommandError(f"{len(failed)} of {len(plan.turns)} turns failed; the replay {replay.id} is kept.")

    def _print(self, renderable: RenderableType) -> None:
        """Render with rich into the command's stdout (so call_command's stdout captures it), in colour on a tty."""
        buffer = io.StringIO()
        Console(
            file=buffer, width=TABLE_WIDTH, force_terminal=self.color, no_color=not self.color, highlight=False
        ).print(renderable)
        self.stdout.write(buffer.getvalue(), ending="")


def _new_table(title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("question", max_width=QUESTION_CHARS, no_wrap=True, overflow="ellipsis")
    return table


def _plan_table(plan: ReplayPlan) -> Table:
    table = _new_table(f"Dry run of {plan.original.id} ({plan.original.title})")
    for column in ("route then → now", "why", "model then → now", "provider now"):
        table.add_column(column, no_wrap=True)
    for turn in plan.turns:
        then = turn.then
        table.add_row(
            str(turn.number), turn.question, _change(then.route if then else None, turn.planned.route),
            ", ".join(turn.reasons) or NONE, _change(then.model if then else None, turn.planned.model),
            turn.planned.provider.name,
        )
    return table


def _replay_table(plan: ReplayPlan) -> Table:
    table = _new_table(f"Replay of {plan.original.id} ({plan.original.title})")
    for column in ("route then → now", "model then → now"):
        table.add_column(column, no_wrap=True)
    for column in ("tokens then", "tokens now", "cost then", "cost now", "TTFT then", "TTFT now", "similar"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for turn in plan.turns:
        then, now = turn.then, turn.now
        similarity = turn.similarity
        table.add_row(
            str(turn.number), turn.question, _change(then.route if then else None, now.route if now else None),
            _change(then.model if then else None, now.model if now else None), _tokens(then), _tokens(now),
            _cost(then), _cost(now), _ms(then), _ms(now), NONE if similarity is None else f"{similarity:.0%}",
            now.status if now else NONE,
        )
    then_total, now_total = total(t.then for t in plan.turns), total(t.now for t in plan.turns)
    table.add_section()
    table.add_row(
        "", "total", "", "", _total_tokens(then_total), _total_tokens(now_total), _money(then_total),
        _money(now_total), "", "", "", "",
    )
    return table


def _change(then: str | None, now: str | None) -> str:
    return f"{then or NONE} → {now or NONE}"


def _tokens(figures: Figures | None) -> str:
    if figures is None or figures.input_tokens is None or figures.output_tokens is None:
        return NONE
    return f"{figures.input_tokens}/{figures.output_tokens}"


def _total_tokens(summed: Total) -> str:
    return f"{summed.input_tokens}/{summed.output_tokens}"


def _cost(figures: Figures | None) -> str:
    if figures is None or figures.cost_usd is None:
        return NONE
    return f"{figures.cost_usd:f}"


def _money(summed: Total) -> str:
    amount = f"{summed.cost_usd.quantize(Decimal('0.00000001')):f}"
    return f"{amount} + ?" if summed.cost_unknown else amount


def _ms(figures: Figures | None) -> str:
    if figures is None or figures.ttft_ms is None:
        return NONE
    return f"{figures.ttft_ms:.0f}"
