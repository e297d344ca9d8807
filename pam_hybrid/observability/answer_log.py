"""One JSON line per answer on the `pam_hybrid.answers` logger (its JSON formatter is set in settings' LOGGING):
ids, route, provider, model, tokens, cost, timings and outcome. Never the message text, never a secret.

Tokens and cost are the sum of the answer's provider calls (every attempt and tool round), the same figures as its
usage record and call rows: `estimated_cost_usd` is the part of the cost that was estimated, `unknown_cost_calls`
the calls whose model has no price (`cost_usd` is then null).

`request_id` is the answer's message id: the one id every frame of the answer, its database row and this line
share (the socket protocol has no separate request id).
"""

from __future__ import annotations

import logging
from typing import Any

from pam_hybrid.domain.answer import Answer

logger = logging.getLogger("pam_hybrid.answers")


def answer_fields(answer: Answer, *, user_id: object, saved: bool) -> dict[str, Any]:
    usage = answer.usage
    cost = answer.cost_usd
    return {
        "request_id": str(answer.message_id),
        "user_id": str(user_id),
        "conversation_id": str(answer.conversation_id),
        "route": answer.route,
        "provider": answer.provider,
        "model": answer.model,
        "input_tokens": usage.input_tokens,
        "cache_read_tokens": usage.cached_input_tokens,
        "cache_write_tokens": usage.cache_creation_input_tokens,
        "output_tokens": usage.output_tokens,
        "usage_estimated": usage.estimated,
        "cost_usd": None if cost is None else f"{cost:f}",  # fixed-point: never "0E-8"
        "estimated_cost_usd": f"{answer.estimated_cost_usd:f}",
        "unknown_cost_calls": answer.unknown_cost_calls,
        "ttft_ms": None if answer.ttft_ms is None else round(answer.ttft_ms, 3),
        "total_ms": round(answer.total_ms, 3),
        "outcome": answer.outcome,
        "finish_reason": answer.finish_reason,
        "fallback_from": answer.fallback_from or None,
        "model_calls": len(answer.calls),
        "failed_attempts": len(answer.attempts),
        "saved": saved,
    }


def answer_log(answer: Answer, *, user_id: object, saved: bool) -> None:
    """Log the answer's line: once, after its save was attempted (`saved` says whether it succeeded)."""
    logger.info("answer", extra=answer_fields(answer, user_id=user_id, saved=saved))
