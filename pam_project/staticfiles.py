"""WhiteNoise's static-file middleware, streaming its files asynchronously when served over ASGI.

WhiteNoise 6 hands Django a file to iterate synchronously; under ASGI Django then reads the whole file in a
thread and warns about it on every static response. Here the same response streams the file in blocks, each read
in a thread, so the server's event loop never blocks on the disk and nothing is warned.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import IO, Any

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware

BLOCK_BYTES = 64 * 1024


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, with an asynchronous body for ASGI requests (a WSGI or sync test client request is unchanged)."""

    @staticmethod
    def serve(static_file: Any, request: HttpRequest) -> HttpResponse:
        response: HttpResponse = WhiteNoiseMiddleware.serve(static_file, request)
        file = getattr(response, "file_to_stream", None)
        if isinstance(request, ASGIRequest) and file is not None:
            response.streaming_content = _blocks(file)  # type: ignore[attr-defined]
        return response


async def _blocks(file: IO[bytes]) -> AsyncIterator[bytes]:
    """The file's bytes in blocks; the response closes the file (FileResponse registered it when it was set)."""
    while block := await asyncio.to_thread(file.read, BLOCK_BYTES):
        yield block
