"""Re-running a conversation's user turns through today's gateway, for staff (the replay_conversation command).

`replay_plan` reads the original and routes each user turn as the gateway would today: no model call, no write (all
that --dry-run does). `replay_run` then creates the replay conversation and sends the turns one after another, each
answered with the replay's own earlier answers as context, and reads every answer back as saved, to set beside the
original's.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from channels.db import database_sync_to_async
from django.contrib.auth.base_user import AbstractBaseUser

from pam_hybrid.conf import PamSettings
from pam_hybrid.conversations import services
from pam_hybrid.domain.routes import RouteChoice
from pam_hybrid.gateway.routes import Target, resolve_route
from pam_hybrid.gateway.stream import AnswerStream, ChatRequest
from pam_hybrid.models import Conversation, Message
from pam_hybrid.replay import selectors as replay_selectors
from pam_hybrid.replay.selectors import SavedAnswer
from pam_hybrid.routing import HISTORY_TURNS, classify

NOT_SAVED = "The answer was not saved."


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """What a replay forces: the route (auto: today's classifier decides), the provider and the model (empty: the
    route's; a model alone keeps the route's provider)."""

    route: RouteChoice = "auto"
    provider: str = ""
    model: str = ""


@dataclass(frozen=True, slots=True)
class Figures:
    """One answer as saved: who answered, what it said, and what it cost."""

    route: str
    provider: str
    model: str
    status: str
    text: str
    error: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: Decimal | None = None
    ttft_ms: float | None = None

    @classmethod
    def of(cls, saved: SavedAnswer) -> Figures:
        message, usage = saved.message, saved.usage
        return cls(
            route=message.route, provider=message.provider, model=message.model, status=message.status,
            text=message.content, error=message.error,
            input_tokens=None if usage is None else usage.input_tokens,
            output_tokens=None if usage is None else usage.output_tokens,
            cost_usd=None if usage is None else usage.cost_usd,
            ttft_ms=None if usage is None else usage.ttft_ms,
        )


@dataclass(slots=True)
class TurnReplay:
    """One user turn: its answer then, where today's gateway routes it (and why), and once replayed its answer now."""

    number: int
    question: str
    then: Figures | None
    planned: Target
    reasons: tuple[str, ...] = ()
    """The classifier's reasons (empty when the route was forced)."""
    now: Figures | None = None

    @property
    def similarity(self) -> float | None:
        """How alike the answers then and now are, from 0 to 1 (difflib's SequenceMatcher ratio); None without both."""
        if self.then is None or self.now is None:
            return None
        return difflib.SequenceMatcher(None, self.then.text, self.now.text).ratio()

    @property
    def failed(self) -> bool:
        """Replayed without a usable answer (an error, or one that could not be saved)."""
        return self.now is not None and self.now.status not in (Message.Status.COMPLETE, Message.Status.PARTIAL)


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    original: Conversation
    owner: AbstractBaseUser
    options: ReplayOptions
    turns: list[TurnReplay] = field(default_factory=list)


def replay_plan(*, original: Conversation, options: ReplayOptions, settings: PamSettings) -> ReplayPlan:
    """Route every user turn of `original` as today's gateway would (its classifier, then the forced route, provider
    and model). Reads only; raises TargetUnavailable, before anything is sent, for a forced provider that cannot
    answer."""
    turns: list[TurnReplay] = []
    history: list[str] = []
    for number, turn in enumerate(replay_selectors.conversation_user_turns(conversation=original), start=1):
        content = turn.question.content
        classification = classify(content, history[-HISTORY_TURNS:], settings.router_threshold)
        history.extend((content, turn.answer.message.content if turn.answer is not None else ""))
        route = classification.route if options.route == "auto" else options.route
        target = resolve_route(route, settings, provider=options.provider, model=options.model)
        turns.append(TurnReplay(
            number=number, question=content, then=None if turn.answer is None else Figures.of(turn.answer),
            planned=target, reasons=classification.reasons if options.route == "auto" else (),
        ))
    return ReplayPlan(original=original, owner=original.owner, options=options, turns=turns)


def _ignore(turn: TurnReplay) -> None:
    """The default progress callback."""


async def replay_run(plan: ReplayPlan, *, on_turn: Callable[[TurnReplay], None] = _ignore) -> Conversation:
    """Create the replay and answer its turns in order, each once the previous answer is saved, filling in each
    turn's `now`. A failed turn is recorded as such and the replay goes on."""
    replay = await database_sync_to_async(services.conversation_replay_create)(original=plan.original)
    for turn in plan.turns:
        turn.now = await _answer(replay, turn, plan)
        on_turn(turn)
    return replay


async def _answer(replay: Conversation, turn: TurnReplay, plan: ReplayPlan) -> Figures:
    """One turn through the gateway, as the owner's next message in the replay; its answer as saved (an error if
    the gateway could not save it)."""
    options = plan.options
    stream = AnswerStream(ChatRequest(
        user=plan.owner, content=turn.question, conversation_id=str(replay.id), route=options.route,
        provider=options.provider, model=options.model,
    ))
    async for _ in stream.chunks():
        pass
    if stream.saved is not None:
        await stream.saved  # an answer no provider accepted is saved just after its last chunk
    saved = await database_sync_to_async(replay_selectors.answer_get)(message_id=stream.message_id)
    if saved is not None and saved.message.status != Message.Status.STREAMING:
        return Figures.of(saved)
    final = stream.final
    return Figures(
        route=turn.planned.route, provider=turn.planned.provider.name, model=turn.planned.model,
        status=Message.Status.ERROR, text="", error=final.content if final is not None and final.content else NOT_SAVED,
    )


@dataclass(frozen=True, slots=True)
class Total:
    """Tokens and cost summed over answers; `cost_unknown` when some answer's cost is unknown (or it has none)."""

    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    cost_unknown: bool


def total(answers: Iterable[Figures | None]) -> Total:
    present = list(answers)
    known = [a for a in present if a is not None]
    return Total(
        input_tokens=sum(a.input_tokens or 0 for a in known),
        output_tokens=sum(a.output_tokens or 0 for a in known),
        cost_usd=sum((a.cost_usd for a in known if a.cost_usd is not None), Decimal(0)),
        cost_unknown=any(a is None or a.cost_usd is None for a in present),
    )
