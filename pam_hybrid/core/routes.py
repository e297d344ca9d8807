"""Which provider and model serve each route; a route whose provider has no API key uses the offline model."""

from __future__ import annotations

from dataclasses import dataclass

from pam_hybrid.conf import PamSettings
from pam_hybrid.core.classifier import Route
from pam_hybrid.providers.base import Provider
from pam_hybrid.providers.offline import OFFLINE_MODEL
from pam_hybrid.providers.registry import get_provider


@dataclass(frozen=True, slots=True)
class Target:
    route: Route
    provider: Provider
    model: str


def resolve_route(route: Route, settings: PamSettings) -> Target:
    name, model = ("openai", settings.simple_model) if route == "simple" else ("anthropic", settings.complex_model)
    provider = get_provider(name)
    if not provider.is_configured(settings):
        return Target(route=route, provider=get_provider("offline"), model=OFFLINE_MODEL)
    return Target(route=route, provider=provider, model=model)


def fallback_target(target: Target, settings: PamSettings) -> Target | None:
    """The other route's provider, if it is a different, configured one (never the offline model)."""
    other = resolve_route("complex" if target.route == "simple" else "simple", settings)
    if other.provider.name in (target.provider.name, "offline"):
        return None
    return Target(route=target.route, provider=other.provider, model=other.model)
