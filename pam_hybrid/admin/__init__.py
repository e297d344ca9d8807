"""The staff side in the Django admin: one module per area, each registering its own models and pages."""

from pam_hybrid.admin import breakers, conversations, prices, signals, usage

__all__ = ["breakers", "conversations", "prices", "signals", "usage"]
