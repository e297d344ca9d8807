"""The cost arithmetic on a given price: each kind of token at its own rate, the long-context tier, rounding,
snapshot names and sums. (Which price applies when, from the file or an override: tests/pricing/.)"""

from __future__ import annotations

from decimal import Decimal

import pytest

from pam_hybrid.domain.chunks import Usage
from pam_hybrid.domain.pricing import LongContext, Price, Rates, cost_of, model_family, total_cost

D = Decimal
BASE = Rates(input=D("3"), output=D("15"), cache_read=D("0.30"), cache_write_5m=D("3.75"), cache_write_1h=D("6"))
LONG = Rates(input=D("6"), output=D("22.50"), cache_read=D("0.60"), cache_write_5m=D("7.50"), cache_write_1h=D("12"))
PRICE = Price("a-model", BASE, LongContext(above=200_000, rates=LONG))


def test_every_kind_of_token_is_billed_at_its_own_rate() -> None:
    # Anthropic's counts: input excludes cache reads and writes; 300k writes of which 100k with a 1-hour lifetime.
    usage = Usage(input_tokens=50_000, output_tokens=10_000, cached_input_tokens=100_000,
                  cache_creation_input_tokens=30_000, cache_write_1h_tokens=10_000)
    # 50k x 3 + 100k x 0.30 + 20k x 3.75 + 10k x 6 + 10k x 15, per million
    assert cost_of(PRICE, usage) == D("0.15") + D("0.03") + D("0.075") + D("0.06") + D("0.15")


def test_openai_cached_tokens_are_taken_out_of_its_input_count() -> None:
    usage = Usage(input_tokens=100_000, cached_input_tokens=60_000, input_includes_cached=True)
    assert cost_of(PRICE, usage) == D("0.12") + D("0.018")


def test_reasoning_tokens_are_output_and_are_not_billed_twice() -> None:
    assert cost_of(PRICE, Usage(output_tokens=1000, reasoning_tokens=800)) == D("0.015")


@pytest.mark.parametrize(("input_tokens", "expected"), [
    # prompt = input + cache reads + cache writes = exactly 200,000: not above the threshold
    (140_000, D("0.42") + D("0.012") + D("0.075") + D("0.15")),
    # 210,000: every token of the call at the long-context rates, output included
    (150_000, D("0.9") + D("0.024") + D("0.15") + D("0.225")),
])
def test_a_prompt_above_the_threshold_bills_every_token_at_the_long_context_rates(
    input_tokens: int, expected: Decimal
) -> None:
    usage = Usage(input_tokens=input_tokens, cached_input_tokens=40_000, cache_creation_input_tokens=20_000,
                  output_tokens=10_000)
    assert cost_of(PRICE, usage) == expected


def test_costs_are_rounded_to_eight_places() -> None:
    assert cost_of(PRICE, Usage(input_tokens=7, output_tokens=3)) == D("0.00006600")
    assert cost_of(Price("m", Rates(D("0.15"), D("0.6"), D(0), D(0), D(0))), Usage(1, 0)) == D("0.00000015")


@pytest.mark.parametrize(("model", "family"), [
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
    ("gpt-4o-mini", "gpt-4o-mini"),
])
def test_dated_snapshots_resolve_to_their_family(model: str, family: str) -> None:
    assert model_family(model) == family


def test_total_cost_is_unknown_if_any_call_is() -> None:
    assert total_cost([D("0.1"), D("0.2")]) == D("0.3")
    assert total_cost([D("0.1"), None]) is None
    assert total_cost([]) == D(0)
