"""How long the route toggle's cost preview takes to compute (`gateway.preview.route_costs`): a message of about 900
characters beside a context filling the default 6,000-token budget, both routes, the app's tools, after the
encodings are loaded (the context's turns come from the cache, so this is a preview's whole work past one row read).

    .venv/bin/python bench/route_preview.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pam_project.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("OPENAI_API_KEY", "bench")  # so each route prices its own model, not the offline one
os.environ.setdefault("ANTHROPIC_API_KEY", "bench")

import django

django.setup()

from pam_hybrid.conf import pam_settings  # noqa: E402
from pam_hybrid.domain.chunks import ChatTurn  # noqa: E402
from pam_hybrid.gateway.preview import context_turns, route_costs  # noqa: E402

ROUNDS = 200
PARAGRAPH = "The migration plan moves the orders table to a partitioned layout, keeping writes online. " * 3
MESSAGE = "Compare both designs and say which one keeps p99 latency lower under a write-heavy load. " * 10


def main() -> None:
    settings = pam_settings()
    history = [ChatTurn("user" if i % 2 == 0 else "assistant", PARAGRAPH * (1 + i % 3)) for i in range(60)]
    turns = context_turns(history, settings)
    costs = route_costs(MESSAGE, turns, settings)  # loads the encodings
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        route_costs(MESSAGE, turns, settings)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    print(f"context: {len(turns)} turns within a {settings.context_token_budget}-token budget; "
          f"message: {len(MESSAGE)} characters")
    for cost in costs:
        print(f"  {cost.route:8} {cost.model:20} {cost.input_tokens:6} in + {cost.output_tokens} out  ${cost.cost_usd}")
    print(f"route_costs over {ROUNDS} rounds: median {statistics.median(times):.2f} ms, "
          f"p99 {times[int(ROUNDS * 0.99) - 1]:.2f} ms")


if __name__ == "__main__":
    main()
