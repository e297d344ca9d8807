"""Evaluation's arithmetic on a tiny hand-computed set, and the shipped model's recorded figures are what
evaluate computes on the held-out split today."""

from __future__ import annotations

from decimal import Decimal

from pam_hybrid.domain.chunks import Usage
from pam_hybrid.domain.routes import ROUTES, Route
from pam_hybrid.pricing import call_cost
from pam_hybrid.routing.dataset import Example, in_split, load_examples
from pam_hybrid.routing.evaluate import OUTPUT_TOKENS, RouteModels, evaluate, figures_at, query_costs
from pam_hybrid.routing.model import SHIPPED, Model
from pam_hybrid.routing.train import held_out_figures

# Non-fact queries score ~1, fact questions ~0.
FACT_MODEL = Model(named={"fact_question": -20.0}, hashed={}, bias=10.0, threshold=0.5, version="facts")
EXAMPLES = [
    Example("design a payments ledger", "complex"),
    Example("prove the four colour theorem", "complex"),
    Example("what is the best schema for a multi-tenant ledger with audits", "complex"),  # missed: reads as a fact
    Example("what is the capital of peru", "simple"),
    Example("who wrote hamlet", "simple"),
    Example("hello there friend", "simple"),  # over-routed
]


def test_the_confusion_matrix_accuracy_and_recall_are_counted() -> None:
    figures = evaluate(FACT_MODEL, EXAMPLES, thresholds=(0.5,))[0]
    assert (figures.complex_hit, figures.missed_complex, figures.over_routed, figures.simple_hit) == (2, 1, 1, 2)
    assert figures.accuracy == 4 / 6 and figures.complex_recall == 2 / 3 and figures.complex_share == 3 / 6
    assert figures.cost_per_1000 is None


def test_cost_per_1000_averages_each_query_on_the_route_it_took() -> None:
    truth, scores = [True, True, False, False], [0.9, 0.2, 0.6, 0.1]
    costs: list[dict[Route, Decimal | None]] = [{"simple": Decimal("0.001"), "complex": Decimal("0.010")}
                                                for _ in truth]
    costs[3] = {"simple": Decimal("0.003"), "complex": Decimal("0.030")}
    # At 0.5: complex, simple, complex, simple -> 0.010 + 0.001 + 0.010 + 0.003 = 0.024 over 4 queries.
    assert figures_at(truth, scores, 0.5, costs).cost_per_1000 == Decimal("6.0000")
    # At 0: all complex -> 0.010 * 3 + 0.030 = 0.060 over 4.
    assert figures_at(truth, scores, 0.0, costs).cost_per_1000 == Decimal("15.0000")
    costs[0] = {"simple": Decimal("0.001"), "complex": None}
    assert figures_at(truth, scores, 0.5, costs).cost_per_1000 is None
    assert figures_at(truth, scores, 0.95, costs).cost_per_1000 == Decimal("1.5000")  # all simple: 0.006 / 4


def test_a_query_is_priced_from_its_estimated_input_and_the_typical_output_per_route() -> None:
    routes = RouteModels(providers={"simple": "openai", "complex": "anthropic"},
                         models={"simple": "gpt-4o-mini", "complex": "claude-sonnet-5-5"})
    short, longer = Example("hi", "simple"), Example("hi", "simple", history=("tell me a story", "once " * 400))
    short_costs, longer_costs = query_costs(short, routes), query_costs(longer, routes)
    for route in ROUTES:
        short_cost, longer_cost = short_costs[route], longer_costs[route]
        assert short_cost is not None and longer_cost is not None and longer_cost > short_cost
    floor = call_cost("gpt-4o-mini", Usage(output_tokens=OUTPUT_TOKENS["simple"]))
    simple, complex_ = short_costs["simple"], short_costs["complex"]
    assert floor is not None and simple is not None and complex_ is not None and complex_ > simple > floor


def test_the_shipped_model_records_the_held_out_figures_evaluate_computes() -> None:
    held_out = in_split(load_examples(), "held_out")
    assert SHIPPED.figures["held_out"] == held_out_figures(SHIPPED, held_out).summary()
    assert SHIPPED.figures["held_out"]["threshold"] == SHIPPED.threshold
