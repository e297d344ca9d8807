"""The provider interface: what the gateway asks of every model provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol

from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.chunks import ChatTurn, ProviderEvent


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as offered to a model: `parameters` is its arguments' JSON Schema."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One call to a model: the context turns (oldest first, the newest last), the tools on offer and limits.

    `tools_allowed` False keeps the tools declared (the history may hold their calls) but asks for text.
    """

    model: str
    turns: tuple[ChatTurn, ...]
    max_output_tokens: int
    system: str = ""
    tools: tuple[ToolSpec, ...] = ()
    tools_allowed: bool = True


class Provider(Protocol):
    """A model provider. `stream` yields TextDelta, Usage and Finish events and raises ProviderError subclasses."""

    name: str

    def is_configured(self, settings: PamSettings) -> bool:
        """Whether this provider can be called with these settings (an API key is set)."""
        ...

    def warm(self, settings: PamSettings, loop: asyncio.AbstractEventLoop) -> None:
        """Build what the first request would otherwise pay for (the SDK client); may run in a worker thread."""
        ...

    def stream(self, request: ModelRequest, settings: PamSettings) -> AsyncGenerator[ProviderEvent, None]: ...
