"""`classify` keeps the shared contract, is deterministic, explains itself and obeys the dial."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from pam_hybrid.domain.chunks import ChatTurn
from pam_hybrid.routing import classify, history_texts
from pam_hybrid.routing.dataset import load_examples
from pam_hybrid.routing.model import SHIPPED

QUERIES = [example.text for example in load_examples()[:60]]


def test_classify_returns_the_contract() -> None:
    result = classify("Design a fault-tolerant message queue for payments, with retries and ordering guarantees")
    assert result.route == "complex"
    assert 0 < result.score < 1 and result.threshold == SHIPPED.threshold
    assert result.reasons and all(isinstance(reason, str) and reason for reason in result.reasons)
    assert result.model_version == SHIPPED.version
    json.dumps(dict(result.features))  # JSON-safe
    assert all(isinstance(value, float) and math.isfinite(value) for value in result.features.values())


def test_simple_questions_are_simple_with_reasons() -> None:
    result = classify("What is the capital of France?")
    assert result.route == "simple" and result.reasons


def test_classify_is_deterministic() -> None:
    for text in QUERIES:
        assert classify(text, ("hi", "hello")) == classify(text, ("hi", "hello"))


def test_a_higher_threshold_sends_fewer_queries_complex() -> None:
    shares = [sum(classify(text, threshold=threshold).route == "complex" for text in QUERIES)
              for threshold in (0.0, 0.2, 0.5, 0.8, 1.0)]
    assert shares == sorted(shares, reverse=True)
    assert shares[0] == len(QUERIES) and shares[-1] == 0
    assert 0 < shares[2] < len(QUERIES)


def test_the_threshold_setting_moves_the_boundary(settings: Any) -> None:
    settings.PAM_ROUTER_THRESHOLD = 0.0
    assert classify("hi").route == "complex" and classify("hi").threshold == 0.0
    settings.PAM_ROUTER_THRESHOLD = 1.0
    assert classify("prove that there are infinitely many primes").route == "simple"


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_the_dial_ends_hold_for_extreme_texts(threshold: float) -> None:
    for text in ("", "x" * 32000, "prove " * 500):
        assert classify(text, threshold=threshold).route == ("complex" if threshold == 0 else "simple")


def test_history_texts_keeps_user_and_assistant_text_only() -> None:
    turns = [ChatTurn("user", "q1"), ChatTurn("assistant", ""), ChatTurn("tool"), ChatTurn("assistant", "a1"),
             ChatTurn("user", "q2"), ChatTurn("assistant", "a2")]
    assert history_texts(turns) == ("q1", "a1", "q2", "a2")


def test_a_translation_follow_up_takes_the_label_of_what_it_translates() -> None:
    """Rubric H2: translating a long, tone-carrying answer is complex; translating a one-word answer is simple."""
    email = ("Write an apology email to a client, formal tone",
             ("Dear Ms Okafor, thank you for your patience while we looked into the delayed shipment. " * 12).strip())
    assert classify("and now in French", email).route == "complex"
    assert classify("and now in French", ("capital of peru", "Lima.")).route == "simple"
