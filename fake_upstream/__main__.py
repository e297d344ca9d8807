"""The fake upstream from the command line: ``python -m fake_upstream --port 8100 --ttft-ms 200``; see --help."""

from __future__ import annotations

import argparse
import asyncio
import signal

import fake_upstream
from fake_upstream.scenarios import FAULT_KINDS, FaultKind
from fake_upstream.server import FakeUpstream


async def _serve(args: argparse.Namespace) -> None:
    server = FakeUpstream(
        args.host,
        args.port,
        ttft_ms=args.ttft_ms,
        token_delay_ms=args.token_delay_ms,
        default_tokens=args.tokens,
        hang_limit_ms=args.hang_limit_ms,
        fault_rate=args.fault_rate,
        fault_seed=args.fault_seed,
        fault_kinds=args.fault_kinds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        print(
            f"fake upstream listening: openai_base_url={server.openai_base_url} "
            f"anthropic_base_url={server.anthropic_base_url}",
            flush=True,
        )
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fake_upstream", description=fake_upstream.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100, help="0 picks a free port")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="delay before the first content token")
    parser.add_argument("--token-delay-ms", type=float, default=0.0, help="delay between tokens")
    parser.add_argument("--tokens", type=int, default=None, help="make the default reply exactly N tokens long")
    parser.add_argument(
        "--hang-limit-ms", type=float, default=None, help="longest a hang lasts (default: until the client leaves)"
    )
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="probability that a streaming request gets a random fault"
    )
    parser.add_argument("--fault-seed", type=int, default=None, help="seed of the random faults")
    parser.add_argument(
        "--fault-kinds",
        type=_fault_kinds,
        default=FAULT_KINDS,
        help=f"comma-separated kinds to draw from (default: all of {','.join(FAULT_KINDS)})",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.fault_rate <= 1.0:
        parser.error("--fault-rate must be between 0 and 1")
    asyncio.run(_serve(args))


def _fault_kinds(text: str) -> tuple[FaultKind, ...]:
    """Parse ``--fault-kinds``: comma-separated names from :data:`FAULT_KINDS`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if unknown := [name for name in names if name not in FAULT_KINDS]:
        raise argparse.ArgumentTypeError(f"unknown fault kinds: {', '.join(unknown)}")
    return tuple(kind for kind in FAULT_KINDS if kind in names)


if __name__ == "__main__":
    main()
