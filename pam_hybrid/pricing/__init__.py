"""Model prices as data: the file shipped with the code (`prices.toml`, each price with its source and the day it
was checked), staff overrides effective from a date (the admin's Model prices), and what a call cost at them.

`call_cost` and `price_for` are synchronous and in memory (no query per call); `refresh_overrides` does the one
database read, at start-up, every upkeep tick and on every admin change.
"""

from pam_hybrid.domain.pricing import Price, Rates, model_family, total_cost
from pam_hybrid.pricing.catalogue import shipped_prices
from pam_hybrid.pricing.lookup import call_cost, price_for
from pam_hybrid.pricing.overrides import forget_overrides, overrides_by_model, overrides_loaded, refresh_overrides

__all__ = [
    "Price", "Rates", "call_cost", "forget_overrides", "model_family", "overrides_by_model", "overrides_loaded",
    "price_for", "refresh_overrides", "shipped_prices", "total_cost",
]
