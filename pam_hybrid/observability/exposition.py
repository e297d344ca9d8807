"""One scrape of /metrics: this process's metrics (or, in multiprocess mode, every process's, added up from
PROMETHEUS_MULTIPROC_DIR) and each registered provider's circuit-breaker state, read from the breaker store now.

Breaker states are read at scrape time rather than kept in a gauge: with REDIS_URL the store is shared, so any
process reports the state every process acts on (without it, this process's own breakers).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from pam_hybrid.breakers import State
from pam_hybrid.breakers.wiring import breaker_readings, provider_breaker
from pam_hybrid.observability.metrics import multiprocess_mode
from pam_hybrid.providers.registry import provider_names

logger = logging.getLogger(__name__)

BREAKER_STATE_VALUES: dict[State, float] = {"closed": 0, "half_open": 1, "open": 2}


class _Scrape:
    """The metric families of one scrape, as a collector the encoders accept."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


async def breaker_states() -> GaugeMetricFamily:
    """`pam_breaker_state{provider}`: 0 closed, 1 half-open, 2 open; a provider whose store is unreachable is left
    out (and logged) rather than reported closed."""
    family = GaugeMetricFamily(
        "pam_breaker_state", "Circuit breaker of each provider: 0 closed, 1 half-open, 2 open.", labels=["provider"]
    )
    for reading in await breaker_readings(provider_breaker(), provider_names()):
        if reading.status is None:
            logger.warning("metrics: the breaker store is unreachable; %s's state is left out", reading.provider)
            continue
        family.add_metric([reading.provider], BREAKER_STATE_VALUES[reading.status.state])
    return family


def _process_families() -> list[Metric]:
    """Every metric family of this process, or of all processes in multiprocess mode (reads their files)."""
    if not multiprocess_mode():
        return list(REGISTRY.collect())
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in prometheus-client
    return list(registry.collect())


def _encode(accept: str, extra: list[Metric]) -> tuple[bytes, str]:
    encoder, content_type = choose_encoder(accept)
    return encoder(_Scrape([*_process_families(), *extra])), content_type


async def metrics_page(accept: str) -> tuple[bytes, str]:
    """The exposition body and its content type, in the format the scraper's Accept header asks for (the
    Prometheus text format 0.0.4 by default, OpenMetrics when asked)."""
    breakers = await breaker_states()
    # Reading the other processes' files (and /proc for the process metrics) is disk I/O: off the server's loop.
    return await asyncio.to_thread(_encode, accept, [breakers])
