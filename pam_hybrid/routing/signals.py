"""Users' routing signals as training examples for `pam_router train --with-signals` (see RoutingSignal).

Labels: an auto answer escalated to the stronger model → complex; an answer de-escalated → simple; a route forced
on a message → that route; thumbs up → the answer's route; thumbs down on an auto answer that took the simple
route → complex, weakly. Early stops say nothing about the route and are not used, nor are signals whose texts were
deleted with their conversation. One example per message text and history: the strongest signal about it decides
(a weak thumbs down gives way to any other), the latest among equals. The training has no example weights, so
"weak" means only that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pam_hybrid.domain.routes import Route
from pam_hybrid.models import RoutingSignal
from pam_hybrid.routing.dataset import Example, in_split, labels
from pam_hybrid.routing.evaluate import Figures, figures_at, scores_of
from pam_hybrid.routing.model import Model
from pam_hybrid.routing.train import fit_model, held_out_figures

Kind = RoutingSignal.Kind
STRONG, FIRM, WEAK = 2, 1, 0


@dataclass(frozen=True, slots=True)
class Labelled:
    label: Route
    strength: int


def _route(value: str) -> Route | None:
    return "complex" if value == "complex" else "simple" if value == "simple" else None


def signal_label(signal: RoutingSignal) -> Labelled | None:
    """What one signal says the message needed, and how surely; None when it says nothing about the route."""
    auto, route = signal.route_requested == "auto", _route(signal.route)
    if signal.kind == Kind.ESCALATED and auto:
        return Labelled("complex", STRONG)
    if signal.kind == Kind.DE_ESCALATED:
        return Labelled("simple", STRONG)
    if signal.kind == Kind.FORCED_ROUTE and route is not None:
        return Labelled(route, STRONG)
    if signal.kind == Kind.THUMBS_UP and route is not None:
        return Labelled(route, FIRM)
    if signal.kind == Kind.THUMBS_DOWN and auto and route == "simple":
        return Labelled("complex", WEAK)
    return None


def signal_examples(signals: Iterable[RoutingSignal]) -> list[Example]:
    """Training examples from signals given oldest first (ids `signal-` + a digest of the text and history)."""
    chosen: dict[tuple[str, tuple[str, ...]], Labelled] = {}
    for signal in signals:
        labelled = signal_label(signal)
        if labelled is None or not signal.text:
            continue
        key = (signal.text, tuple(str(turn) for turn in signal.history or ()))
        held = chosen.get(key)
        if held is None or labelled.strength >= held.strength:
            chosen[key] = labelled
    return [
        Example(text=text, label=labelled.label, history=history, split="train", id=_id(text, history),
                domain="signal")
        for (text, history), labelled in chosen.items()
    ]


def _id(text: str, history: tuple[str, ...]) -> str:
    return "signal-" + hashlib.sha256("\x1f".join((*history, text)).encode()).hexdigest()[:12]


def stored_signal_examples() -> list[Example]:
    """The examples every stored signal gives (one query)."""
    fields = ("kind", "route", "route_requested", "text", "history")
    return signal_examples(RoutingSignal.objects.order_by("created_at", "id").only(*fields))


@dataclass(frozen=True, slots=True)
class Compared:
    """A model's figures at its threshold: on the held_out split, and on the whole labelled set."""

    name: str
    held_out: Figures
    labelled: Figures


def _compared(name: str, model: Model, labelled: Sequence[Example]) -> Compared:
    everything = figures_at(labels(labelled), scores_of(model, labelled), model.threshold)
    return Compared(name, held_out_figures(model, in_split(labelled, "held_out")), everything)


def with_and_without(labelled: Sequence[Example], with_signals: Model, examples: int) -> list[Compared]:
    """The model trained with `examples` signal examples beside one trained the same way on the labelled train
    split alone (fitted here), so what the signals changed can be read."""
    without = fit_model(in_split(labelled, "train"))
    return [_compared("without signals", without, labelled),
            _compared(f"with signals ({examples})", with_signals, labelled)]
