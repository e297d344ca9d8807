"""What a message would cost on each route before it is sent: the route toggle's preview.

Input is what the gateway would send: the message with the context turns `fit_to_budget` keeps within
PAM_CONTEXT_TOKEN_BUDGET and the tools on offer, counted as `providers.tokens` estimates a call. Output is a typical
answer's length for the route (`TYPICAL_OUTPUT_TOKENS`, at most PAM_MAX_OUTPUT_TOKENS). Priced at today's price of
the route's model by `pricing.call_cost`, without prompt-cache discounts (so it errs high on a long conversation).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.chunks import ChatTurn, Usage
from pam_hybrid.domain.context import fit_to_budget
from pam_hybrid.domain.routes import ROUTES, Route
from pam_hybrid.gateway.routes import resolve_route
from pam_hybrid.pricing import call_cost
from pam_hybrid.providers.base import ModelRequest, ToolSpec
from pam_hybrid.providers.tokens import estimate_input_tokens
from pam_hybrid.tools.base import Tool
from pam_hybrid.tools.registry import all_tools

TYPICAL_OUTPUT_TOKENS: dict[Route, int] = {"simple": 350, "complex": 900}
"""A typical answer's length on each route: a short direct reply, and a longer worked one (the stronger model is
asked the harder questions and writes more)."""


@dataclass(frozen=True, slots=True)
class RouteCost:
    """The estimated cost of sending the message on one route; `cost_usd` None when its model has no price."""

    route: Route
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None

    def as_json(self) -> dict[str, Any]:
        cost = None if self.cost_usd is None else f"{self.cost_usd:f}"
        return {"route": self.route, "provider": self.provider, "model": self.model,
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "cost_usd": cost}


def context_turns(history: Sequence[ChatTurn], settings: PamSettings) -> tuple[ChatTurn, ...]:
    """The newest turns that could go with any message: those that fit the budget beside an empty one (a longer
    message keeps a suffix of them). Small enough to cache per conversation."""
    return fit_to_budget(history, ChatTurn("user", ""), settings.context_token_budget)[:-1]


def route_costs(content: str, history: Sequence[ChatTurn], settings: PamSettings) -> tuple[RouteCost, ...]:
    """The message's estimated cost on each route, simple first."""
    turns = fit_to_budget(history, ChatTurn("user", content), settings.context_token_budget)
    tools = _specs_for(tuple(all_tools())) if settings.tools_enabled else ()
    costs = []
    for route in ROUTES:
        target = resolve_route(route, settings)
        request = ModelRequest(model=target.model, turns=turns, max_output_tokens=settings.max_output_tokens,
                               tools=tools)
        input_tokens = estimate_input_tokens(target.provider.name, target.model, request)
        output_tokens = min(TYPICAL_OUTPUT_TOKENS[route], settings.max_output_tokens)
        cost = call_cost(target.model, Usage(input_tokens=input_tokens, output_tokens=output_tokens))
        costs.append(RouteCost(route, target.provider.name, target.model, input_tokens, output_tokens, cost))
    return tuple(costs)


@functools.lru_cache(maxsize=8)
def _specs_for(tools: tuple[Tool[Any], ...]) -> tuple[ToolSpec, ...]:
    return tuple(ToolSpec(t.name, t.description, t.json_schema()) for t in tools)
