"""Reads for the staff side of the circuit breakers: which providers have one, and their recorded transitions."""

from __future__ import annotations

from pam_hybrid.conf import PamSettings
from pam_hybrid.models import BreakerEvent
from pam_hybrid.providers.registry import get_provider, provider_names


def breaker_provider_names(*, settings: PamSettings) -> list[str]:
    """The registered providers that are configured, plus any that have recorded breaker transitions, sorted."""
    configured = {name for name in provider_names() if get_provider(name).is_configured(settings)}
    recorded = set(BreakerEvent.objects.values_list("provider", flat=True).distinct())
    return sorted(configured | recorded)


def breaker_event_list_recent(*, provider: str | None = None, limit: int = 20) -> list[BreakerEvent]:
    """The latest transitions, newest first (of one provider, if given)."""
    events = BreakerEvent.objects.order_by("-at", "-id")
    if provider is not None:
        events = events.filter(provider=provider)
    return list(events[:limit])
