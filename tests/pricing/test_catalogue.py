"""The shipped price file: every model has a source and the day it was checked, rates are Decimal and sane, and a
malformed file is refused rather than read as zeros."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from pam_hybrid.pricing.catalogue import PriceFileError, parse_prices, shipped_prices


def test_every_shipped_price_names_its_source_and_when_it_was_checked() -> None:
    prices = [price for rows in shipped_prices().values() for price in rows]
    assert len(prices) >= 20
    for price in prices:
        assert price.source and price.note and isinstance(price.checked, date), price.model
        assert all(isinstance(rate, Decimal) for rate in vars_of(price.rates)), price.model


def test_paid_models_have_every_rate_and_anthropic_writes_cost_more_than_input() -> None:
    for model, rows in shipped_prices().items():
        for price in rows:
            rates = price.rates
            if model == "pam-offline":
                continue
            assert rates.input > 0 and rates.output > rates.input and rates.cache_read < rates.input, model
            if model.startswith("claude-"):
                assert rates.cache_write_5m == rates.input * Decimal("1.25"), model
                assert rates.cache_write_1h == rates.input * 2, model


def test_the_simple_and_complex_routes_default_models_have_prices() -> None:
    assert {"gpt-4o-mini", "claude-sonnet-5-5"} <= set(shipped_prices())


@pytest.mark.parametrize(("text", "complaint"), [
    ('[[price]]\nmodel = "m"\ninput = 1\noutput = 2\ncache_read = 0.1\ncache_write_5m = 1', "cache_write_1h"),
    ('[[price]]\nmodel = "m"\ninput = -1\noutput = 2\ncache_read = 0\ncache_write_5m = 1\ncache_write_1h = 2',
     "input"),
    ('[[price]]\nmodel = "m"\ninput = "1"\noutput = 2\ncache_read = 0\ncache_write_5m = 1\ncache_write_1h = 2',
     "input"),
    ('[[price]]\nmodel = "m"\nimput = 1', "unknown fields"),
    ('[[price]]\ninput = 1', "without a model"),
])
def test_a_malformed_price_file_is_refused(text: str, complaint: str) -> None:
    with pytest.raises(PriceFileError, match=complaint):
        parse_prices(text)


def test_rows_of_one_model_are_ordered_by_the_day_they_start() -> None:
    rates = "input = 1\noutput = 2\ncache_read = 0\ncache_write_5m = 1\ncache_write_1h = 2\n"
    rows = parse_prices(f'[[price]]\nmodel = "m"\nsince = 2026-11-01\n{rates}[[price]]\nmodel = "m"\n{rates}')["m"]
    assert [row.effective_from is None for row in rows] == [True, False]


def vars_of(rates: object) -> list[object]:
    return [getattr(rates, name) for name in ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")]
