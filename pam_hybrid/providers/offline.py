"""A built-in offline model, used for a route whose provider has no API key, so a fresh checkout chats at once.

It streams a clearly labelled answer at a realistic pace and reports usage like a real provider.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator

from pam_hybrid.conf import PamSettings
from pam_hybrid.domain.chunks import Accepted, Finish, ProviderEvent, TextDelta, Usage
from pam_hybrid.providers.base import ModelRequest

OFFLINE_MODEL = "pam-offline"
_TOKEN_RE = re.compile(r"\S+\s*|\s+")


def offline_reply(request: ModelRequest) -> str:
    question = request.turns[-1].content.strip() if request.turns else ""
    excerpt = question if len(question) <= 200 else question[:200] + "…"
    return (
        "[Offline model — no API key is configured for this route, so this answer was not written by an AI.] "
        f"You asked: “{excerpt}”. Set OPENAI_API_KEY and/or ANTHROPIC_API_KEY (or OPENAI_BASE_URL for any "
        "OpenAI-compatible server) and restart to get real answers."
    )


class OfflineProvider:
    name = "offline"

    def is_configured(self, settings: PamSettings) -> bool:
        return True

    def warm(self, settings: PamSettings, loop: asyncio.AbstractEventLoop) -> None:
        """Nothing to prepare: the offline model has no client."""

    async def stream(self, request: ModelRequest, settings: PamSettings) -> AsyncGenerator[ProviderEvent, None]:
        tokens = _TOKEN_RE.findall(offline_reply(request))[: request.max_output_tokens]
        delay = settings.offline_token_delay_ms / 1000
        yield Accepted()
        for token in tokens:
            await asyncio.sleep(delay)
            yield TextDelta(token)
        input_tokens = sum(len(_TOKEN_RE.findall(turn.content)) for turn in request.turns)
        yield Usage(input_tokens=input_tokens, output_tokens=len(tokens))
        yield Finish(reason="stop", complete=True)
