"""How long the query classifier takes (target: far under 5 ms; aim for microseconds).

    .venv/bin/python bench/classifier.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pam_hybrid.gateway.classifier import classify

QUERIES = {
    "short question": "What is the capital of France?",
    "reasoning request": "Explain step by step how to design a fault-tolerant message queue",
    "code": "Why does this fail?\n```python\ndef f(x):\n    return x[0]\n```",
    "long text (4 kB)": "Please summarise this. " + "lorem ipsum dolor sit amet " * 150,
}
ROUNDS = 20_000


def time_us(text: str) -> list[float]:
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        classify(text)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def main() -> None:
    print(f"classify(), {ROUNDS} calls per query, microseconds")
    print(f"{'query':<20} {'route':<8} {'median':>7} {'p99':>7}")
    for name, text in QUERIES.items():
        samples = sorted(time_us(text))
        p99 = samples[int(len(samples) * 0.99) - 1]
        print(f"{name:<20} {classify(text).route:<8} {statistics.median(samples):7.1f} {p99:7.1f}")


if __name__ == "__main__":
    main()
