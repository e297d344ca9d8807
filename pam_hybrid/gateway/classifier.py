"""Decides whether a query is simple (fast, cheap model) or complex (stronger model).

Pure Python with no I/O: a handful of cheap signals scored in a few microseconds. An explicit route
from the client overrides it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pam_hybrid.domain.routes import Route

# Words that ask for reasoning, creation or depth rather than a quick fact.
_COMPLEX_WORDS = frozenset({
    "analyse", "analyze", "analysis", "architect", "architecture", "compare", "comparison", "critique",
    "debug", "derive", "design", "evaluate", "explain", "implement", "implementation", "optimise",
    "optimize", "plan", "proof", "prove", "refactor", "reason", "reasoning", "review", "strategy",
    "summarise", "summarize", "tradeoff", "tradeoffs", "trade-offs", "essay", "algorithm",
})
_COMPLEX_PHRASES = ("step by step", "in detail", "pros and cons", "why does", "why is", "how would")
_WORD_RE = re.compile(r"[a-z][a-z\-]+")
_CODE_RE = re.compile(r"```|\bdef |\bclass |\bfunction\b|;\s*$|\{\s*$", re.MULTILINE)

_LONG_QUERY_CHARS = 600
_THRESHOLD = 2


@dataclass(frozen=True, slots=True)
class Classification:
    route: Route
    score: int
    reasons: tuple[str, ...]


def classify(text: str) -> Classification:
    """Score the query; two or more signals make it complex."""
    if len(text) > _LONG_QUERY_CHARS:
        # Length alone reaches the threshold: skip reading the rest, so even a 32,000-character message
        # costs microseconds.
        return Classification(route="complex", score=_THRESHOLD, reasons=("long",))
    lowered = text.lower()
    score = 0
    reasons: list[str] = []
    if _CODE_RE.search(text):
        score += 2
        reasons.append("code")
    words = set(_WORD_RE.findall(lowered))
    hits = words & _COMPLEX_WORDS
    if hits:
        score += 2 if len(hits) > 1 else 1
        reasons.append("keywords")
    if any(phrase in lowered for phrase in _COMPLEX_PHRASES):
        score += 1
        reasons.append("phrasing")
    if lowered.count("?") > 1:
        score += 1
        reasons.append("several questions")
    route: Route = "complex" if score >= _THRESHOLD else "simple"
    return Classification(route=route, score=score, reasons=tuple(reasons))
