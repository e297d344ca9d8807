"""Users' routing signals as training examples: which signals label what, the strongest signal about a text wins,
and signals that say nothing about the route (or lost their text) give none."""

from __future__ import annotations

from typing import Any

import pytest

from pam_hybrid.models import RoutingSignal
from pam_hybrid.routing.signals import stored_signal_examples
from tests.support.factories import user_create

pytestmark = pytest.mark.django_db


def signal(user: Any, kind: str, route: str, text: str, requested: str = "auto", **extra: Any) -> None:
    RoutingSignal.objects.create(user=user, kind=kind, route=route, route_requested=requested, text=text, **extra)


def labels() -> dict[str, str]:
    return {example.text: example.label for example in stored_signal_examples()}


def test_each_kind_labels_as_the_rules_say() -> None:
    alice = user_create(username="alice")
    signal(alice, "escalated", "simple", "escalated auto", route_to="complex")
    signal(alice, "escalated", "simple", "escalated forced", requested="simple", route_to="complex")
    signal(alice, "de_escalated", "complex", "de-escalated", route_to="simple")
    signal(alice, "forced_route", "complex", "forced complex", requested="complex")
    signal(alice, "forced_route", "simple", "forced simple", requested="simple")
    signal(alice, "thumbs_up", "complex", "liked complex")
    signal(alice, "thumbs_up", "simple", "liked simple")
    signal(alice, "thumbs_down", "simple", "disliked simple")
    signal(alice, "thumbs_down", "complex", "disliked complex")
    signal(alice, "thumbs_down", "simple", "disliked forced simple", requested="simple")
    signal(alice, "stopped_early", "simple", "stopped")
    signal(alice, "escalated", "simple", "", route_to="complex")  # its conversation was deleted
    assert labels() == {
        "escalated auto": "complex",
        "de-escalated": "simple",
        "forced complex": "complex",
        "forced simple": "simple",
        "liked complex": "complex",
        "liked simple": "simple",
        "disliked simple": "complex",
    }
    examples = stored_signal_examples()
    assert all(e.split == "train" and e.domain == "signal" and e.id.startswith("signal-") for e in examples)
    assert len({e.id for e in examples}) == len(examples)


def test_the_strongest_signal_about_a_text_wins_and_history_tells_texts_apart() -> None:
    alice = user_create(username="alice")
    signal(alice, "thumbs_down", "simple", "translate it")  # weak: complex
    signal(alice, "thumbs_up", "simple", "translate it")  # firm: simple
    signal(alice, "thumbs_up", "simple", "and now in French", history=["Write a haiku", "…"])
    signal(alice, "escalated", "simple", "and now in French", history=["Write a haiku", "…"], route_to="complex")
    signal(alice, "thumbs_up", "simple", "and now in French", history=["What is 2+2?", "4"])
    examples = {(e.text, e.history): e.label for e in stored_signal_examples()}
    assert examples == {
        ("translate it", ()): "simple",
        ("and now in French", ("Write a haiku", "…")): "complex",
        ("and now in French", ("What is 2+2?", "4")): "simple",
    }
