"""Which provider and model serve each route; a route whose provider has no API key uses the offline model.

A caller may force the provider and/or the model (replay_conversation does): the target is then pinned, answered by
that provider or not at all (no fallback), and a provider that is unknown or has no API key is refused up front.
"""

from __future__ import annotations

from dataclasses import dataclass

from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.exceptions import BadInput
from pam_hybrid.domain.routes import Route
from pam_hybrid.providers.base import Provider
from pam_hybrid.providers.offline import OFFLINE_MODEL
from pam_hybrid.providers.registry import get_provider, provider_names

OFFLINE = "offline"
ROUTE_PROVIDERS: dict[Route, str] = {"simple": "openai", "complex": "anthropic"}
"""The provider that serves each route (with PAM_SIMPLE_MODEL / PAM_COMPLEX_MODEL)."""


class TargetUnavailable(BadInput):
    """A forced provider or model that cannot answer: an unknown provider, or one without an API key."""

    user_message = "The requested model provider is not available."


@dataclass(frozen=True, slots=True)
class Target:
    route: Route
    provider: Provider
    model: str
    pinned: bool = False
    """Forced by the caller: answered by this provider and model or not at all, never by the fallback."""


def route_model(route: Route, settings: PamSettings) -> str:
    return settings.simple_model if route == "simple" else settings.complex_model


def resolve_route(route: Route, settings: PamSettings, *, provider: str = "", model: str = "") -> Target:
    """The route's target; `provider` and/or `model` force one (a `model` alone keeps the route's provider)."""
    if provider or model:
        name = provider or ROUTE_PROVIDERS[route]
        chosen = configured_provider(name, settings)
        return Target(route=route, provider=chosen, model=_pinned_model(name, model, settings), pinned=True)
    routed = get_provider(ROUTE_PROVIDERS[route])
    if not routed.is_configured(settings):
        return Target(route=route, provider=get_provider(OFFLINE), model=OFFLINE_MODEL)
    return Target(route=route, provider=routed, model=route_model(route, settings))


def configured_providers(settings: PamSettings) -> list[str]:
    """The registered providers that can be called with these settings, by name."""
    return [name for name in provider_names() if get_provider(name).is_configured(settings)]


def configured_provider(name: str, settings: PamSettings) -> Provider:
    """The provider called `name`, if it is registered and configured; TargetUnavailable (naming those that are)
    otherwise."""
    if name not in provider_names():
        raise TargetUnavailable(f"unknown provider {name!r}; configured: {', '.join(configured_providers(settings))}")
    provider = get_provider(name)
    if not provider.is_configured(settings):
        raise TargetUnavailable(
            f"provider {name!r} is not configured (no API key); configured: {', '.join(configured_providers(settings))}"
        )
    return provider


def _pinned_model(name: str, model: str, settings: PamSettings) -> str:
    """The forced model, or the one the provider serves its route with."""
    if name == OFFLINE:
        if model not in ("", OFFLINE_MODEL):
            raise TargetUnavailable(f"the offline provider has only the model {OFFLINE_MODEL!r}")
        return OFFLINE_MODEL
    if model:
        return model
    for route, routed in ROUTE_PROVIDERS.items():
        if routed == name:
            return route_model(route, settings)
    raise TargetUnavailable(f"provider {name!r} serves no route: name its model")


def fallback_target(target: Target, settings: PamSettings) -> Target | None:
    """The other route's provider, if it is a different, configured one (never the offline model, and never for a
    pinned target)."""
    if target.pinned:
        return None
    other = resolve_route("complex" if target.route == "simple" else "simple", settings)
    if other.provider.name in (target.provider.name, OFFLINE):
        return None
    return Target(route=target.route, provider=other.provider, model=other.model)
