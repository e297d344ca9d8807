"""The conversation context sent to a model: the most recent turns that fit the token budget."""

from __future__ import annotations

from collections.abc import Sequence

from pam_hybrid.domain.chunks import ChatTurn

# A rough, provider-neutral estimate: about four characters per token in English text.
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    return max(1, (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN) if text else 0


def fit_to_budget(history: Sequence[ChatTurn], new_turn: ChatTurn, budget_tokens: int) -> tuple[ChatTurn, ...]:
    """The newest history turns whose estimated size, with the new turn, stays within the budget."""
    used = estimate_tokens(new_turn.content)
    kept: list[ChatTurn] = []
    for turn in reversed(history):
        used += estimate_tokens(turn.content)
        if used > budget_tokens:
            break
        kept.append(turn)
    kept.reverse()
    return (*kept, new_turn)
