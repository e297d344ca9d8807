"""How well a router model does on labelled queries: accuracy, the confusion matrix, complex recall and the
estimated cost per 1,000 queries at each threshold of the dial.

Cost assumptions (printed by `pam_router evaluate`): a query's input is the estimate `providers.tokens` makes of
its earlier turns and its text (no system prompt, no tool definitions); its output is a typical answer length per
route (`OUTPUT_TOKENS`); both are priced with today's prices (`pricing.call_cost`) for the route's model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from pam_hybrid.domain.chunks import ChatTurn, Usage
from pam_hybrid.domain.routes import ROUTES, Route
from pam_hybrid.pricing import call_cost
from pam_hybrid.providers.base import ModelRequest
from pam_hybrid.providers.tokens import estimate_input_tokens
from pam_hybrid.routing.dataset import Example, labels
from pam_hybrid.routing.model import Model

THRESHOLDS: tuple[float, ...] = tuple(round(step * 0.05, 2) for step in range(1, 20))
"""The dial's settings evaluated: 0.05 to 0.95."""
OUTPUT_TOKENS: dict[Route, int] = {"simple": 300, "complex": 800}
"""Typical answer length in output tokens per route: the stronger model answers at more length."""


@dataclass(frozen=True, slots=True)
class Figures:
    """A model's results at one threshold. Positive is "complex": `missed_complex` are complex queries sent to the
    cheap model (the expensive mistake), `over_routed` simple ones sent to the strong model."""

    threshold: float
    complex_hit: int
    missed_complex: int
    over_routed: int
    simple_hit: int
    cost_per_1000: Decimal | None = None
    """Estimated USD per 1,000 such queries; None when a price is unknown (or costs were not asked for)."""

    @property
    def total(self) -> int:
        return self.complex_hit + self.missed_complex + self.over_routed + self.simple_hit

    @property
    def accuracy(self) -> float:
        return (self.complex_hit + self.simple_hit) / self.total if self.total else 0.0

    @property
    def complex_recall(self) -> float:
        complex_total = self.complex_hit + self.missed_complex
        return self.complex_hit / complex_total if complex_total else 1.0

    @property
    def complex_share(self) -> float:
        return (self.complex_hit + self.over_routed) / self.total if self.total else 0.0

    def summary(self) -> dict[str, float | int]:
        """JSON-safe, as the model file records it."""
        return {
            "threshold": self.threshold, "n": self.total, "accuracy": round(self.accuracy, 4),
            "complex_recall": round(self.complex_recall, 4), "complex_hit": self.complex_hit,
            "missed_complex": self.missed_complex, "over_routed": self.over_routed, "simple_hit": self.simple_hit,
        }


@dataclass(frozen=True, slots=True)
class RouteModels:
    """The provider and model of each route, to price queries with."""

    providers: Mapping[Route, str]
    models: Mapping[Route, str]


def figures_at(truth: Sequence[bool], scores: Sequence[float], threshold: float,
               costs: Sequence[Mapping[Route, Decimal | None]] = ()) -> Figures:
    """The confusion matrix (and cost per 1,000, given each query's cost per route) of these scores at a threshold."""
    counts = {(True, True): 0, (True, False): 0, (False, True): 0, (False, False): 0}
    spent: Decimal | None = Decimal(0)
    for index, (is_complex, score) in enumerate(zip(truth, scores, strict=True)):
        routed_complex = score >= threshold
        counts[(is_complex, routed_complex)] += 1
        if costs:
            cost = costs[index]["complex" if routed_complex else "simple"]
            spent = None if spent is None or cost is None else spent + cost
    per_1000 = None
    if costs and spent is not None and truth:
        per_1000 = (spent * 1000 / len(truth)).quantize(Decimal("0.0001"))
    return Figures(
        threshold=threshold, complex_hit=counts[(True, True)], missed_complex=counts[(True, False)],
        over_routed=counts[(False, True)], simple_hit=counts[(False, False)], cost_per_1000=per_1000,
    )


def query_costs(example: Example, routes: RouteModels) -> dict[Route, Decimal | None]:
    """What answering `example` would cost on each route, by the module's assumptions."""
    turns = (*(ChatTurn("user" if index % 2 == 0 else "assistant", text) for index, text in enumerate(example.history)),
             ChatTurn("user", example.text))
    costs: dict[Route, Decimal | None] = {}
    for route in ROUTES:
        model = routes.models[route]
        request = ModelRequest(model=model, turns=turns, max_output_tokens=OUTPUT_TOKENS[route])
        tokens = estimate_input_tokens(routes.providers[route], model, request)
        costs[route] = call_cost(model, Usage(input_tokens=tokens, output_tokens=OUTPUT_TOKENS[route]))
    return costs


def scores_of(model: Model, examples: Sequence[Example]) -> list[float]:
    return [model.classify(example.text, example.history).score for example in examples]


def evaluate(model: Model, examples: Sequence[Example], thresholds: Sequence[float] = THRESHOLDS,
             routes: RouteModels | None = None) -> list[Figures]:
    """The model's figures on `examples` at each threshold (with costs when `routes` is given)."""
    scores = scores_of(model, examples)
    costs = [query_costs(example, routes) for example in examples] if routes is not None else []
    truth = labels(examples)
    return [figures_at(truth, scores, threshold, costs) for threshold in thresholds]
