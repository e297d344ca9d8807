"""Where providers are registered and looked up by name. Adding a provider: a module and one `register` call."""

from __future__ import annotations

import asyncio

from pam_hybrid.conf import PamSettings
from pam_hybrid.providers import tokens
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
    """Every registered provider's name, sorted."""
    return sorted(_PROVIDERS)


async def warm_providers(settings: PamSettings) -> None:
    """Build the configured providers' clients, and load the token estimator's encodings, in a worker thread, so
    the first answer does not pay for it."""
    loop = asyncio.get_running_loop()
    for provider in _PROVIDERS.values():
        if provider.is_configured(settings):
            await loop.run_in_executor(None, provider.warm, settings, loop)
    await loop.run_in_executor(None, tokens.warm, (settings.simple_model, settings.complex_model))


register(OpenAIProvider())
register(AnthropicProvider())
register(OfflineProvider())
