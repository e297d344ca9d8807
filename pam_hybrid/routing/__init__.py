"""The router: decides whether a query needs the stronger model (`complex`) or the cheap one (`simple`), with a
logistic regression over explainable features (see `features`, `model`), trained by `pam_router train`."""

from __future__ import annotations

from collections.abc import Sequence

from pam_hybrid.conf import pam_settings
from pam_hybrid.domain.chunks import ChatTurn
from pam_hybrid.domain.routes import Classification
from pam_hybrid.routing.features import HISTORY_TURNS
from pam_hybrid.routing.model import SHIPPED, Model

__all__ = ["HISTORY_TURNS", "Classification", "Model", "classify", "history_texts"]


def classify(text: str, history: Sequence[str] = (), threshold: float | None = None) -> Classification:
    """Route `text`, the new user message, after `history` (earlier turns, user and assistant alternating, oldest
    first) with the shipped model; `threshold` None reads PAM_ROUTER_THRESHOLD (empty: the model's own)."""
    if threshold is None:
        threshold = pam_settings().router_threshold
    return SHIPPED.classify(text, history, threshold)


def history_texts(turns: Sequence[ChatTurn]) -> tuple[str, ...]:
    """What the router reads of a conversation's earlier turns: the texts of the last HISTORY_TURNS user and
    assistant turns (tool turns and tool-call-only turns left out)."""
    texts = [turn.content for turn in turns[-2 * HISTORY_TURNS:] if turn.role != "tool" and turn.content]
    return tuple(texts[-HISTORY_TURNS:])
