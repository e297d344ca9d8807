"""Routes: which provider and model serve each route, what a forced provider or model does, and when to fall back."""

from __future__ import annotations

from typing import Any

import pytest

from pam_hybrid.conf import PamSettings, pam_settings
from pam_hybrid.gateway.routes import TargetUnavailable, configured_providers, fallback_target, resolve_route
from pam_hybrid.providers.offline import OFFLINE_MODEL


@pytest.fixture
def keys(settings: Any) -> Any:
    """Both providers configured, with models of our choosing."""
    settings.OPENAI_API_KEY = "sk-openai"
    settings.ANTHROPIC_API_KEY = "sk-anthropic"
    settings.PAM_SIMPLE_MODEL = "gpt-4.1-mini"
    settings.PAM_COMPLEX_MODEL = "claude-haiku-4-5"
    return settings


def summary(route: str, settings: PamSettings, **forced: str) -> tuple[str, str, str, bool]:
    target = resolve_route(route, settings, **forced)  # type: ignore[arg-type]
    return target.route, target.provider.name, target.model, target.pinned


def test_each_route_has_its_provider_and_model(keys: Any) -> None:
    s = pam_settings()
    assert summary("simple", s) == ("simple", "openai", "gpt-4.1-mini", False)
    assert summary("complex", s) == ("complex", "anthropic", "claude-haiku-4-5", False)


def test_a_route_without_an_api_key_uses_the_offline_model(keys: Any) -> None:
    keys.ANTHROPIC_API_KEY = ""
    assert summary("complex", pam_settings()) == ("complex", "offline", OFFLINE_MODEL, False)
    assert configured_providers(pam_settings()) == ["offline", "openai"]


def test_a_forced_provider_serves_with_its_own_routes_model_on_any_route(keys: Any) -> None:
    s = pam_settings()
    assert summary("simple", s, provider="anthropic") == ("simple", "anthropic", "claude-haiku-4-5", True)
    assert summary("complex", s, provider="openai") == ("complex", "openai", "gpt-4.1-mini", True)
    assert summary("complex", s, provider="openai", model="gpt-5") == ("complex", "openai", "gpt-5", True)
    assert summary("complex", s, provider="offline") == ("complex", "offline", OFFLINE_MODEL, True)


def test_a_forced_model_alone_keeps_the_routes_provider(keys: Any) -> None:
    s = pam_settings()
    assert summary("simple", s, model="gpt-5") == ("simple", "openai", "gpt-5", True)
    assert summary("complex", s, model="claude-opus-4") == ("complex", "anthropic", "claude-opus-4", True)


@pytest.mark.parametrize(("forced", "error"), [
    ({"provider": "mistral"}, "unknown provider 'mistral'; configured: anthropic, offline, openai"),
    ({"provider": "offline", "model": "gpt-5"}, "the offline provider has only the model 'pam-offline'"),
])
def test_an_unknown_provider_or_model_is_refused(keys: Any, forced: dict[str, str], error: str) -> None:
    with pytest.raises(TargetUnavailable, match=error):
        resolve_route("simple", pam_settings(), **forced)  # type: ignore[arg-type]


def test_a_forced_provider_without_its_key_is_refused_not_replaced_by_the_offline_model(keys: Any) -> None:
    keys.OPENAI_API_KEY = ""
    unconfigured = r"'openai' is not configured \(no API key\); configured: anthropic, offline"
    with pytest.raises(TargetUnavailable, match=unconfigured):
        resolve_route("complex", pam_settings(), provider="openai")
    with pytest.raises(TargetUnavailable, match="provider 'openai' is not configured"):
        resolve_route("simple", pam_settings(), model="gpt-5")


def test_the_fallback_is_the_other_routes_provider_except_for_a_pinned_target(keys: Any) -> None:
    s = pam_settings()
    fallback = fallback_target(resolve_route("simple", s), s)
    assert fallback is not None
    assert (fallback.route, fallback.provider.name, fallback.model) == ("simple", "anthropic", "claude-haiku-4-5")
    assert fallback_target(resolve_route("simple", s, provider="openai"), s) is None
    assert fallback_target(resolve_route("simple", s, model="gpt-5"), s) is None


def test_no_fallback_to_the_offline_model(keys: Any) -> None:
    keys.ANTHROPIC_API_KEY = ""
    s = pam_settings()
    assert fallback_target(resolve_route("simple", s), s) is None
