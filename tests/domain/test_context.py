"""The context sent to a model keeps the newest turns that fit the token budget."""

from __future__ import annotations

from pam_hybrid.domain.chunks import ChatTurn
from pam_hybrid.domain.context import estimate_tokens, fit_to_budget


def test_newest_turns_within_budget_are_kept_in_order() -> None:
    history = [ChatTurn("user", "a" * 400), ChatTurn("assistant", "b" * 400), ChatTurn("user", "c" * 40)]
    new = ChatTurn("user", "d" * 40)
    turns = fit_to_budget(history, new, budget_tokens=130)
    assert [t.content[0] for t in turns] == ["b", "c", "d"]


def test_new_turn_is_always_sent() -> None:
    new = ChatTurn("user", "x" * 4000)
    assert fit_to_budget([ChatTurn("user", "old")], new, budget_tokens=10) == (new,)


def test_estimate_rounds_up() -> None:
    assert (estimate_tokens(""), estimate_tokens("abc"), estimate_tokens("abcde")) == (0, 1, 2)
