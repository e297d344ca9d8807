"""The fake upstream in a process of its own, reporting the times it recorded, for ``bench/ttft.py``.

A separate process keeps the fake's work (and its GIL) away from the benchmark's clients, so the client
timings measure the gateway and not the benchmark. Protocol, one JSON object a line:

* on start it prints ``{"openai_base_url": ..., "anthropic_base_url": ...}``;
* each ``dump`` line read on stdin is answered with ``{"requests": [...], "connections": N}``: N is the
  number of TCP connections accepted so far; per request, the bench tag found in its last user message
  (``[bench:TAG]``), ``received_at`` and ``first_token_at`` (``time.monotonic()``, a system-wide clock on
  Linux, so comparable with the client's readings), ``outcome`` and ``status``;
* end of stdin or SIGTERM stops it.

Run as ``python -m bench.upstream --ttft-ms 200 --token-delay-ms 20 --tokens 20`` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fake_upstream import FakeUpstream, RecordedRequest, last_user_text  # noqa: E402

TAG_RE = re.compile(r"\[bench:([^\]]+)\]")


def request_record(request: RecordedRequest) -> dict[str, Any]:
    """What the benchmark needs to know about one recorded request."""
    body = request.json if isinstance(request.json, dict) else {}
    match = TAG_RE.search(last_user_text(body))
    return {
        "tag": match.group(1) if match else None,
        "provider": request.provider,
        "received_at": request.received_at,
        "first_token_at": request.first_token_at,
        "outcome": request.outcome,
        "status": request.status,
    }


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve(args: argparse.Namespace) -> None:
    serve_fake(FakeUpstream(ttft_ms=args.ttft_ms, token_delay_ms=args.token_delay_ms, default_tokens=args.tokens))


def serve_fake(server: FakeUpstream) -> None:
    """Start the fake, announce its URLs, answer ``dump`` lines until stdin closes."""
    server.start()
    try:
        urls = {"openai_base_url": server.openai_base_url, "anthropic_base_url": server.anthropic_base_url}
        print(json.dumps(urls), flush=True)
        for line in sys.stdin:
            if line.strip() == "dump":
                records = [request_record(request) for request in list(server.requests)]
                print(json.dumps({"requests": records, "connections": server.connections}), flush=True)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ttft-ms", type=float, default=200.0)
    parser.add_argument("--token-delay-ms", type=float, default=20.0)
    parser.add_argument("--tokens", type=int, default=20)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    serve(parser.parse_args(argv))


if __name__ == "__main__":
    main()
