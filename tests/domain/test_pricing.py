"""Pricing: Decimal cost from provider-reported usage; snapshots resolve to their family; unknown is None."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from pam_hybrid.domain.chunks import Usage
from pam_hybrid.domain.pricing import cost_usd, model_family


def test_cost_is_exact_decimal() -> None:
    # gpt-4o-mini: $0.15 input and $0.60 output per million tokens.
    assert cost_usd("gpt-4o-mini", Usage(input_tokens=1_000_000, output_tokens=500_000)) == Decimal("0.45")
    assert cost_usd("gpt-4o-mini", Usage(input_tokens=7, output_tokens=3)) == Decimal("0.00000285")


@pytest.mark.parametrize(
    ("model", "family"),
    [("gpt-4o-mini-2024-07-18", "gpt-4o-mini"), ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
     ("claude-sonnet-5-5", "claude-sonnet-5-5")],
)
def test_dated_snapshots_resolve_to_their_family(model: str, family: str) -> None:
    assert model_family(model) == family
    assert cost_usd(model, Usage(input_tokens=10, output_tokens=10)) == cost_usd(family, Usage(10, 10))


def test_unknown_model_has_unknown_cost_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pam_hybrid.domain.pricing"):
        assert cost_usd("llama-local-test-model", Usage(input_tokens=10, output_tokens=10)) is None
        assert cost_usd("llama-local-test-model", Usage(input_tokens=10, output_tokens=10)) is None
    assert len([r for r in caplog.records if "llama-local-test-model" in r.getMessage()]) == 1


def test_openai_cached_prompt_tokens_are_priced_at_the_cached_rate() -> None:
    # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per million. OpenAI's prompt count includes
    # the cached tokens: 1,000,000 prompt tokens of which 800,000 cached.
    usage = Usage(input_tokens=1_000_000, output_tokens=0, cached_input_tokens=800_000, input_includes_cached=True)
    assert cost_usd("gpt-4o-mini", usage) == Decimal("0.03") + Decimal("0.06")


def test_anthropic_cache_reads_and_writes_have_their_own_rates() -> None:
    # claude-sonnet-5-5: $2 input, $0.20 cache read, $2.50 cache write, $10 output per million; Anthropic's
    # input count excludes cache reads and writes.
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cached_input_tokens=2_000_000,
                  cache_creation_input_tokens=400_000)
    assert cost_usd("claude-sonnet-5-5", usage) == Decimal("2") + Decimal("0.4") + Decimal("1") + Decimal("1")


def test_total_cost_is_unknown_if_any_call_is() -> None:
    from pam_hybrid.domain.pricing import total_cost

    assert total_cost([Decimal("0.1"), Decimal("0.2")]) == Decimal("0.3")
    assert total_cost([Decimal("0.1"), None]) is None
