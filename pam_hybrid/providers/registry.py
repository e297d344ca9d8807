"""Where providers are registered and looked up by name. Adding a provider: a module and one `register` call."""

from __future__ import annotations

from pam_hybrid.providers.anthropic_messages import AnthropicProvider
from pam_hybrid.providers.base import Provider
from pam_hybrid.providers.offline import OfflineProvider
from pam_hybrid.providers.openai_chat import OpenAIProvider

_PROVIDERS: dict[str, Provider] = {}


def register(provider: Provider) -> None:
    _PROVIDERS[provider.name] = provider


def get_provider(name: str) -> Provider:
    return _PROVIDERS[name]


def provider_names() -> list[str]:
    return sorted(_PROVIDERS)


register(OpenAIProvider())
register(AnthropicProvider())
register(OfflineProvider())
