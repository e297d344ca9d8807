"""Anthropic prompt caching, modelled on the rules Anthropic documents, so that the gateway's use of it can be
tested and its saving measured (the real API is out of reach here).

The rules modelled:

* A request is a sequence of blocks in the order tools, system, messages (see ``text.prompt_blocks``; token
  counts by the fake's word rule). A block marked ``cache_control: {"type": "ephemeral"}`` (``"ttl": "5m"``
  or ``"1h"``) is a breakpoint: at most four per request (more: HTTP 400), and a 1-hour breakpoint may not
  follow a 5-minute one (HTTP 400).
* Each breakpoint's prefix is identified by a hash of every block up to and including it, exactly as sent
  (``cache_control`` itself left out; a plain string content counts as one text block), of the model and of the
  API key. A change of ``tool_choice`` or ``thinking`` changes the messages' prefixes, not the tools' or
  the system's.
* Reading: the longest cached prefix ending at a breakpoint or at most 19 blocks before one (the API's 20-block
  lookback) is read: ``cache_read_input_tokens``. A hit renews that entry's lifetime.
* Writing: each breakpoint past the one read whose prefix holds at least the model's minimum cacheable length
  (:data:`MIN_CACHEABLE_TOKENS`, default 1024) is written with its TTL; the tokens from the end of the previous
  cached prefix up to it are ``cache_creation_input_tokens``, split by TTL into
  ``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``. A shorter prefix is not cached
  and raises no error.
* ``input_tokens`` is the rest: the tokens after the last prefix read or written.
* Entries live 5 minutes or 1 hour from their last write or read, on the fake's own clock (:meth:`advance`
  moves it on, for tests). An entry is readable as soon as its request was planned (the real API: once its
  response began).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fake_upstream.text import PromptBlock, prompt_blocks

MAX_BREAKPOINTS = 4
LOOKBACK_BLOCKS = 20
TTL_S = {"5m": 300.0, "1h": 3600.0}
MIN_CACHEABLE_TOKENS: dict[str, int] = {
    "claude-opus-4-5": 4096,
    "claude-opus-4-6": 4096,
    "claude-haiku-4-5": 4096,
    "claude-sonnet-4-6": 2048,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
"""Minimum cacheable prompt length of the models whose documented minimum is not 1024 tokens."""
DEFAULT_MIN_CACHEABLE_TOKENS = 1024


class CacheControlError(ValueError):
    """A request the API refuses with HTTP 400 for its cache_control markers."""


@dataclass(frozen=True)
class CacheUsage:
    """How one request's input tokens split: read from the cache, written to it (by TTL), and the rest."""

    input_tokens: int
    cache_read_input_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int

    @property
    def cache_creation_input_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens


def min_cacheable_tokens(model: str) -> int:
    for family, minimum in MIN_CACHEABLE_TOKENS.items():
        if model.startswith(family):
            return minimum
    return DEFAULT_MIN_CACHEABLE_TOKENS


def _breakpoint_ttl(block: PromptBlock) -> str | None:
    control = block.cache_control
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        return None
    ttl = control.get("ttl", "5m")
    if ttl not in TTL_S:
        raise CacheControlError(f"cache_control.ttl: Input should be '5m' or '1h', not {ttl!r}")
    return str(ttl)


class PromptCache:
    """The cache of one fake server: prefix hashes and when each expires."""

    def __init__(self, min_tokens: int | None = None) -> None:
        self.min_tokens = min_tokens
        """Minimum cacheable length for every model (None: each model's documented minimum)."""
        self._expires: dict[str, tuple[float, str]] = {}
        self._offset_s = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() + self._offset_s

    def advance(self, seconds: float) -> None:
        """Move the cache's clock on (entries expire as if that much time had passed)."""
        self._offset_s += seconds

    def clear(self) -> None:
        with self._lock:
            self._expires.clear()
            self._offset_s = 0.0

    def __len__(self) -> int:
        now = self.now()
        return sum(1 for expires, _ in self._expires.values() if expires > now)

    def use(self, body: Mapping[str, Any], api_key: str) -> CacheUsage | None:
        """Read and write the cache for one Messages request; None when it marks no breakpoint (nothing cached,
        nothing read: the caller reports its input as usual). Raises CacheControlError for a request the API
        refuses."""
        blocks = prompt_blocks(body)
        breakpoints = [(i, ttl) for i, block in enumerate(blocks) if (ttl := _breakpoint_ttl(block)) is not None]
        if not breakpoints:
            return None
        if len(breakpoints) > MAX_BREAKPOINTS:
            raise CacheControlError(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(breakpoints)}."
            )
        ttls = [ttl for _, ttl in breakpoints]
        if "5m" in ttls and "1h" in ttls[ttls.index("5m"):]:
            raise CacheControlError("a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block")
        hashes, totals = self._prefixes(blocks, body, api_key)
        minimum = self.min_tokens if self.min_tokens is not None else min_cacheable_tokens(str(body.get("model", "")))
        with self._lock:
            return self._read_and_write(hashes, totals, breakpoints, minimum)

    @staticmethod
    def _prefixes(blocks: list[PromptBlock], body: Mapping[str, Any], api_key: str) -> tuple[list[str], list[int]]:
        """The hash of each block's prefix and the tokens up to and including it."""
        digest = hashlib.sha256(f"{api_key}\0{body.get('model', '')}".encode())
        hashes: list[str] = []
        totals: list[int] = []
        total = 0
        in_messages = False
        for block in blocks:
            if block.part == "messages" and not in_messages:
                in_messages = True
                settings = {"tool_choice": body.get("tool_choice"), "thinking": body.get("thinking")}
                digest.update(json.dumps(settings, sort_keys=True).encode())
            digest.update(block.material.encode() + b"\0")
            hashes.append(digest.copy().hexdigest())
            total += block.tokens
            totals.append(total)
        return hashes, totals

    def _read_and_write(
        self, hashes: list[str], totals: list[int], breakpoints: list[tuple[int, str]], minimum: int
    ) -> CacheUsage:
        now = self.now()
        candidates = {p for b, _ in breakpoints for p in range(max(0, b - LOOKBACK_BLOCKS + 1), b + 1)}
        hit = max((p for p in candidates if self._expires.get(hashes[p], (0.0, ""))[0] > now), default=-1)
        if hit >= 0:
            _, ttl = self._expires[hashes[hit]]
            self._expires[hashes[hit]] = (now + TTL_S[ttl], ttl)
        read = totals[hit] if hit >= 0 else 0
        covered = read
        written = {"5m": 0, "1h": 0}
        for position, ttl in breakpoints:
            if position <= hit or totals[position] < minimum:
                continue
            written[ttl] += totals[position] - covered
            covered = totals[position]
            self._expires[hashes[position]] = (now + TTL_S[ttl], ttl)
        total = totals[-1] if totals else 0
        return CacheUsage(input_tokens=total - covered, cache_read_input_tokens=read,
                          cache_write_5m_tokens=written["5m"], cache_write_1h_tokens=written["1h"])
