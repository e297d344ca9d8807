"""Costs from the shipped price file (`pam_hybrid/pricing/prices.toml`), checked to the exact Decimal: OpenAI
cached prompt tokens; Anthropic cache reads and 5-minute and 1-hour writes, whose rates differ per model; the
long-context tiers; a price that changed on a date; snapshot names; an unknown model."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pam_hybrid.domain.chunks import Usage
from pam_hybrid.pricing import call_cost, price_for

D = Decimal
NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)


def test_openai_cached_prompt_tokens_are_priced_at_the_cached_rate() -> None:
    # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per million; OpenAI's prompt count includes its
    # cached tokens: 1,000,000 prompt tokens of which 800,000 cached.
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=800_000, output_tokens=500_000,
                  input_includes_cached=True)
    assert call_cost("gpt-4o-mini", usage, NOW) == D("0.03") + D("0.06") + D("0.30")
    # gpt-5: cached input 90% off ($1.25 -> $0.125)
    assert call_cost("gpt-5", usage, NOW) == D("0.25") + D("0.1") + D("5")


# Anthropic's counts: 100k uncached input, 1M cache reads, 300k cache writes of which 200k with a 1-hour lifetime,
# 20k output. The prompt (1.4M) is above every long-context threshold, so these are models without one.
CACHED = Usage(input_tokens=100_000, output_tokens=20_000, cached_input_tokens=1_000_000,
               cache_creation_input_tokens=300_000, cache_write_1h_tokens=200_000)


@pytest.mark.parametrize(("model", "expected"), [
    # input $4, cache read $0.20 (0.05x), 5m write $5, 1h write $8, output $20
    ("claude-opus-5-5", D("0.4") + D("0.2") + D("0.5") + D("1.6") + D("0.4")),
    # input $10, cache read $0.25 (0.025x), 5m write $12.50, 1h write $20, output $50
    ("claude-fable-5-1", D("1") + D("0.25") + D("1.25") + D("4") + D("1")),
    # input $2, cache read $0.10 (0.05x, since 2026-10-07), 5m write $2.50, 1h write $4, output $10
    ("claude-sonnet-5-5", D("0.2") + D("0.1") + D("0.25") + D("0.8") + D("0.2")),
    # input $1, cache read $0.10 (0.1x), 5m write $1.25, 1h write $2, output $5
    ("claude-haiku-4-5", D("0.1") + D("0.1") + D("0.125") + D("0.4") + D("0.1")),
])
def test_anthropic_cache_reads_and_both_lifetimes_of_writes_have_each_models_own_rates(
    model: str, expected: Decimal
) -> None:
    assert call_cost(model, CACHED, NOW) == expected


def test_a_price_that_changed_on_a_date_prices_earlier_calls_at_the_old_rate() -> None:
    # Sonnet 5.5's cache reads went from $0.20 to $0.10 on 2026-10-07 (see the file's note).
    before = datetime(2026, 10, 6, 23, 59, tzinfo=UTC)
    assert call_cost("claude-sonnet-5-5", CACHED, before) == D("0.2") + D("0.2") + D("0.25") + D("0.8") + D("0.2")
    assert call_cost("claude-sonnet-5-5", CACHED, datetime(2026, 10, 7, tzinfo=UTC)) == D("1.55")
    assert price_for("claude-sonnet-5-5", before).rates.cache_read == D("0.20")  # type: ignore[union-attr]


def test_anthropic_long_context_counts_cache_reads_and_writes_into_the_prompt() -> None:
    # claude-sonnet-4-5 above 200K: $6 input, $0.60 read, $7.50 5m write, $22.50 output on every token.
    # 150k input alone is under the threshold; with 40k reads and 20k writes the prompt is 210k.
    usage = Usage(input_tokens=150_000, cached_input_tokens=40_000, cache_creation_input_tokens=20_000,
                  output_tokens=10_000)
    assert call_cost("claude-sonnet-4-5-20250929", usage, NOW) == D("0.9") + D("0.024") + D("0.15") + D("0.225")
    under = Usage(input_tokens=140_000, cached_input_tokens=40_000, cache_creation_input_tokens=20_000,
                  output_tokens=10_000)
    assert call_cost("claude-sonnet-4-5", under, NOW) == D("0.42") + D("0.012") + D("0.075") + D("0.15")


def test_openai_long_context_doubles_input_and_raises_output_by_half() -> None:
    # gpt-5.4 above 272K prompt tokens: $5 input, $0.50 cached, $22.50 output.
    usage = Usage(input_tokens=300_000, cached_input_tokens=100_000, output_tokens=10_000, input_includes_cached=True)
    assert call_cost("gpt-5.4", usage, NOW) == D("1") + D("0.05") + D("0.225")
    short = Usage(input_tokens=272_000, output_tokens=10_000, input_includes_cached=True)
    assert call_cost("gpt-5.4", short, NOW) == D("0.68") + D("0.15")


def test_haiku_5_5_is_five_times_dearer_above_100k_prompt_tokens() -> None:
    assert call_cost("claude-haiku-5-5", Usage(input_tokens=100_000, output_tokens=1000), NOW) == D("0.0105")
    assert call_cost("claude-haiku-5-5", Usage(input_tokens=100_001, output_tokens=1000), NOW) == D("0.0525005")


def test_unknown_model_has_unknown_cost_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pam_hybrid.pricing.lookup"):
        assert call_cost("llama-local-pricing-test", Usage(input_tokens=10, output_tokens=10)) is None
        assert call_cost("llama-local-pricing-test", Usage(input_tokens=10, output_tokens=10)) is None
    assert [r.getMessage() for r in caplog.records] == [
        "no price for model 'llama-local-pricing-test': its usage is recorded with cost unknown"
    ]
    assert price_for("llama-local-pricing-test") is None


def test_offline_model_is_free_and_says_so() -> None:
    assert call_cost("pam-offline", Usage(input_tokens=1000, output_tokens=1000)) == D(0)
