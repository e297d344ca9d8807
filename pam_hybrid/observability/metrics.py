"""The Prometheus metrics (prefix `pam_`) and what updates them: each saved answer (with its provider calls, the
same values its call rows hold), and answers starting and ending.

prometheus-client chooses its mode when it is imported, from its own environment variable PROMETHEUS_MULTIPROC_DIR:
unset, the values live in this process; set, in memory-mapped files in that directory (one set per process) that a
scrape of any process adds up. Gauges therefore say how to add up: `livesum` counts only live processes, and a
process removes its live-gauge files as it exits. Updates are in memory (or an mmap): nothing here waits on I/O.
"""

from __future__ import annotations

import atexit
import os

from prometheus_client import Counter, Gauge, Histogram, multiprocess, values

from pam_hybrid.domain.answer import Answer

SECONDS_PER_MS = 1000
TTFT_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0)
ANSWER_BUCKETS_S = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0)

ANSWERS = Counter(
    "pam_answers", "Answers saved, by route, the provider and model that answered, and outcome "
    "(complete, partial, cancelled, error).", ["route", "provider", "model", "outcome"],
)
TTFT_SECONDS = Histogram(
    "pam_ttft_seconds", "Time from the user's message to the answer's first token (answers that had one).",
    ["provider", "model"], buckets=TTFT_BUCKETS_S,
)
ANSWER_SECONDS = Histogram(
    "pam_answer_seconds", "Time from the user's message to the answer's end, whatever its outcome.",
    ["provider", "model", "outcome"], buckets=ANSWER_BUCKETS_S,
)
TOKENS = Counter(
    "pam_tokens", "Tokens of every provider call (every attempt and tool round), as the provider reported them "
    "(estimated when it could not); direction input (uncached), cache_read, cache_write or output.",
    ["provider", "model", "direction"],
)
COST_USD = Counter(
    "pam_cost_usd", "Cost in USD of every provider call whose model has a known price, by how it is known "
    "(reported, estimated, refused: 0); the database keeps the exact Decimal.", ["provider", "model", "basis"],
)
MODEL_CALLS = Counter(
    "pam_model_calls", "Provider calls (every attempt and tool round), by how their cost is known (reported, "
    "estimated, refused, unknown: no price) and why they ended.", ["provider", "model", "basis", "ended"],
)
FALLBACKS = Counter(
    "pam_fallbacks", "Answers another provider gave after the one first chosen failed.",
    ["from_provider", "to_provider"],
)
FAILED_ATTEMPTS = Counter(
    "pam_failed_attempts", "Model calls that failed before an answer began (retried or fallen back from), by "
    "provider and error (CircuitOpen while its breaker was open).", ["provider", "error"],
)
ACTIVE_STREAMS = Gauge(
    "pam_active_streams", "Answers streaming now (including those waiting for their client to resume them).",
    multiprocess_mode="livesum",
)


def answer_observe(answer: Answer) -> None:
    """Count one answer: called once, after it is saved."""
    ANSWERS.labels(answer.route, answer.provider, answer.model, answer.outcome).inc()
    ANSWER_SECONDS.labels(answer.provider, answer.model, answer.outcome).observe(answer.total_ms / SECONDS_PER_MS)
    if answer.ttft_ms is not None:
        TTFT_SECONDS.labels(answer.provider, answer.model).observe(answer.ttft_ms / SECONDS_PER_MS)
    for call in answer.calls:
        usage = call.usage
        MODEL_CALLS.labels(call.provider, call.model, call.basis, call.ended).inc()
        for direction, tokens in (("input", usage.uncached_input_tokens), ("cache_read", usage.cached_input_tokens),
                                  ("cache_write", usage.cache_creation_input_tokens), ("output", usage.output_tokens)):
            if tokens:
                TOKENS.labels(call.provider, call.model, direction).inc(tokens)
        if call.cost_usd is not None:
            COST_USD.labels(call.provider, call.model, call.basis).inc(float(call.cost_usd))
    if answer.fallback_from:
        FALLBACKS.labels(answer.fallback_from, answer.provider).inc()
    for attempt in answer.attempts:
        FAILED_ATTEMPTS.labels(attempt["provider"], attempt["error"]).inc()


def stream_opened() -> None:
    ACTIVE_STREAMS.inc()


def stream_closed() -> None:
    ACTIVE_STREAMS.dec()


def multiprocess_mode() -> bool:
    """Whether prometheus-client keeps its values in PROMETHEUS_MULTIPROC_DIR (decided when it was imported)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def _mark_process_dead(pid: int) -> None:
    """Drop this process's live gauges (active streams) from the shared directory as it exits."""
    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # prometheus-client leaves it untyped


if multiprocess_mode():
    atexit.register(_mark_process_dead, os.getpid())
