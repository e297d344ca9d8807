"""What every server benchmark sets up: the fake upstream in its own process, a migrated database with a logged-in
session, N daphne processes as in production; with the CPU readings, percentiles and log scans that read them.

Shared by ``bench/ttft.py``, ``bench/sustained.py``, ``bench/compare.py`` and ``bench/targets.py``. Everything runs
on 127.0.0.1 and is stopped on exit; ``bench_stack`` is the one-call form.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

from websockets.exceptions import InvalidMessage

ROOT = Path(__file__).resolve().parent.parent


HOST = "127.0.0.1"
HANDSHAKE_TRIES = 3

Opened = TypeVar("Opened")


BENCH_USERNAME = "bench"


# Run in a subprocess with the server's environment: create the user and a logged-in session, print its key.
SESSION_SCRIPT = f"""
import importlib
import django
django.setup()
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
user, _ = get_user_model().objects.get_or_create(username={BENCH_USERNAME!r})
store = importlib.import_module(settings.SESSION_ENGINE).SessionStore()
store[SESSION_KEY] = user._meta.pk.value_to_string(user)
store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
store[HASH_SESSION_KEY] = user.get_session_auth_hash()
store.save()
print(store.session_key)
"""


class BenchError(Exception):
    """The benchmark could not be set up or run."""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks; NaN when empty."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
    }


def present(values: Sequence[float | None]) -> list[float]:
    return [value for value in values if value is not None]


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the benchmark dies without tearing down (Linux only)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class CpuPlan:
    """--pin: each daphne process on a CPU of its own; the fake upstream and the clients on the others, as in a
    deployment where the gateway's cores are its own and the upstream and the users are elsewhere."""

    servers: tuple[frozenset[int], ...]
    rest: frozenset[int]

    def describe(self) -> str:
        cpus = ", ".join(f"daphne {i} on CPU {min(c)}" for i, c in enumerate(self.servers))
        return f"pinned: {cpus}; the fake upstream and the clients on CPU {','.join(map(str, sorted(self.rest)))}"


def cpu_plan(processes: int) -> CpuPlan:
    """CPUs for --pin; BenchError if the host has no CPU left over for the upstream and the clients."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) <= processes:
        raise BenchError(f"--pin needs more CPUs than daphne processes ({len(available)} available)")
    return CpuPlan(tuple(frozenset({cpu}) for cpu in available[:processes]), frozenset(available[processes:]))


def child_options() -> dict[str, Any]:
    """Popen options for children: own session (Ctrl-C reaches only the benchmark, which tears down)."""
    options: dict[str, Any] = {"cwd": ROOT, "start_new_session": True}
    if sys.platform.startswith("linux"):
        options["preexec_fn"] = _die_with_parent
    return options


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far, from /proc (None where that is not available)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def host_busy_seconds() -> float | None:
    """CPU time all CPUs of the host have spent busy since boot (/proc/stat; None where that is not available)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


BACKING_SERVERS = {
    "postgres": "postgres", "postgresql": "postgres", "pgsql": "postgres", "psql": "postgres", "postgis": "postgres",
    "redis": "redis-server", "rediss": "redis-server",
}


def local_backing_servers() -> tuple[str, ...]:
    """Process names of the PostgreSQL/Redis servers DATABASE_URL and REDIS_URL point to on this host, if any."""
    names = []
    for variable in ("DATABASE_URL", "REDIS_URL"):
        with contextlib.suppress(ValueError):
            url = urlsplit(os.environ.get(variable, ""))
            name = BACKING_SERVERS.get(url.scheme)
            if name and url.hostname in LOCAL_HOSTS:
                names.append(name)
    return tuple(names)


def named_processes_cpu_seconds(names: Sequence[str]) -> float | None:
    """CPU time of every process with one of these names, their reaped children included (PostgreSQL's exited
    backends count in the postmaster's); None when there are no names or /proc is not there."""
    if not names:
        return None
    total = 0.0
    try:
        stats = list(Path("/proc").glob("[0-9]*/stat"))
    except OSError:
        return None
    for stat in stats:
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            if text[text.index("(") + 1:text.rindex(")")] in names:
                fields = text.rsplit(")", 1)[1].split()
                total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def read_line(stream: IO[str], timeout: float, what: str) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    line = stream.readline() if ready else ""
    if not line:
        raise BenchError(f"no answer from {what} within {timeout:g} s")
    return line


class Upstream:
    """The fake upstream process (bench/upstream.py)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        urls = json.loads(read_line(self._stdout, 30, "the fake upstream"))
        self.openai_base_url: str = urls["openai_base_url"]
        self.anthropic_base_url: str = urls["anthropic_base_url"]

    @property
    def _stdout(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout

    def recorded(self) -> dict[str, Any]:
        """What the fake has recorded so far: ``requests`` (one dict each) and ``connections`` (a count)."""
        assert self.process.stdin is not None
        self.process.stdin.write("dump\n")
        self.process.stdin.flush()
        return dict(json.loads(read_line(self._stdout, 30, "the fake upstream")))


@contextlib.contextmanager
def running_fake(command: list[str]) -> Iterator[Upstream]:
    """A fake upstream in a child process that speaks bench/upstream.py's line protocol; stopped on exit."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, **child_options())
    try:
        yield Upstream(process)
    finally:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        stop_process(process)


def server_env(upstream: Upstream, workdir: Path, debug: bool) -> dict[str, str]:
    """The server's environment: DATABASE_URL/REDIS_URL from ours if set, else a temporary SQLite file.

    As in production unless `debug`: DEBUG off, with a random SECRET_KEY made for this run (the settings require
    one when DEBUG is off; the session is created with it too, so every process can read it).
    """
    env = {key: value for key, value in os.environ.items() if not key.lower().endswith("_proxy")}
    env.update({
        "DEBUG": "true" if debug else "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": f"{HOST},localhost",
        "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'bench.sqlite3'}",
        "OPENAI_API_KEY": "sk-bench-not-a-real-key",
        "OPENAI_BASE_URL": upstream.openai_base_url,
        "ANTHROPIC_API_KEY": "sk-ant-bench-not-a-real-key",
        "ANTHROPIC_BASE_URL": upstream.anthropic_base_url,
        "NO_PROXY": "*",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "pam_project.settings",
        # One benchmark user sends every message: the per-user limits would refuse most of them.
        "PAM_MAX_CONCURRENT_ANSWERS": "100000",
        "PAM_MAX_SOCKETS_PER_USER": "0",  # every client is the same user
        "PAM_RATE_LIMIT_MESSAGES": "100000",
        "PAM_DAILY_SPEND_CAP_USD": "0",
    })
    return env


def run_checked(command: list[str], env: dict[str, str], timeout: float, what: str) -> str:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, **child_options())
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what} took longer than {timeout:g} s") from exc
    if done.returncode != 0:
        raise BenchError(f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return str(done.stdout)


def migrate(env: dict[str, str], timeout: float) -> None:
    run_checked([sys.executable, "manage.py", "migrate", "--noinput"], env, timeout, "migrate")


def create_session(env: dict[str, str], timeout: float) -> str:
    """A logged-in session for the bench user (created if missing); returns the session key."""
    output = run_checked([sys.executable, "-c", SESSION_SCRIPT], env, timeout, "creating the session")
    return output.strip().splitlines()[-1]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (all held open until every one is picked)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def wait_for_port(port: int, process: subprocess.Popen[Any], deadline: float, what: str) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{what} exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise BenchError(f"{what} did not listen on port {port} in time")


def log_tail(path: Path, chars: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""


def server_log_paths(option: Path | None, workdir: Path, processes: int) -> list[Path]:
    """Where each daphne process writes its output.

    Without --server-log, in the temporary directory. With it: with one process, that file (or daphne-0.log
    in it if it is an existing directory); with several, a directory (created) holding daphne-<i>.log.
    """
    if option is None:
        directory = workdir
    elif processes == 1 and not option.is_dir():
        return [option]
    else:
        directory = option
    directory.mkdir(parents=True, exist_ok=True)
    return [directory / f"daphne-{index}.log" for index in range(processes)]


LOG_PATTERNS = {
    "database is locked": "database is locked",
    "tracebacks": "Traceback (most recent call last)",
    "ERROR lines": " ERROR ",
    "WARNING lines": " WARNING ",
}


def scan_logs(paths: Sequence[Path]) -> dict[str, int]:
    """How many lines of the daphne logs match each of LOG_PATTERNS (case-sensitive), over all processes."""
    counts = dict.fromkeys(LOG_PATTERNS, 0)
    for path in paths:
        with contextlib.suppress(OSError), open(path, errors="replace") as log:
            for line in log:
                for name, pattern in LOG_PATTERNS.items():
                    counts[name] += pattern in line
    return counts


@dataclass(frozen=True)
class Server:
    index: int
    port: int
    pid: int
    log_path: Path


@contextlib.contextmanager
def running_daphnes(env: dict[str, str], log_paths: Sequence[Path], timeout: float,
                    plan: CpuPlan | None = None) -> Iterator[list[Server]]:
    """One daphne process per log path, each serving the project on a free port of its own.

    All are started at once, as several independent servers sharing the database (and Redis, if set) would be
    in production behind a round-robin proxy. When starting them or the work done with them fails, each one's log
    tail goes to stderr once they have stopped.
    """
    ports = free_ports(len(log_paths))
    processes: list[subprocess.Popen[bytes]] = []
    failed = False
    try:
        for port, log_path in zip(ports, log_paths, strict=True):
            command = [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port), "pam_project.asgi:application"]
            with open(log_path, "wb") as log:
                processes.append(
                    subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, **child_options())
                )
            if plan is not None:
                os.sched_setaffinity(processes[-1].pid, plan.servers[len(processes) - 1])
        deadline = time.monotonic() + timeout
        servers = []
        for index, (port, process, log_path) in enumerate(zip(ports, processes, log_paths, strict=True)):
            wait_for_port(port, process, deadline, f"daphne process {index}")
            print(f"daphne process {index} (pid {process.pid}) listening on {HOST}:{port}, log: {log_path}",
                  flush=True)
            servers.append(Server(index=index, port=port, pid=process.pid, log_path=log_path))
        yield servers
    except KeyboardInterrupt:
        raise
    except BaseException:
        failed = True
        raise
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            stop_process(process)
        if failed:
            for index, log_path in enumerate(log_paths):
                sys.stderr.write(f"--- daphne process {index} log (tail): {log_path} ---\n{log_tail(log_path)}\n")


def channel_layer_name() -> str:
    return "redis" if os.environ.get("REDIS_URL") else "in-memory"


def database_name() -> str:
    url = os.environ.get("DATABASE_URL")
    return url.split(":", 1)[0] if url else "temporary sqlite"


async def with_handshake_retries(open_once: Callable[[], Awaitable[Opened]],
                                 on_retry: Callable[[], None] = lambda: None) -> Opened:
    """Under a burst of handshakes daphne now and then closes a connection before answering its upgrade (the client
    sees no HTTP response): such a socket is opened again, at most HANDSHAKE_TRIES times in all."""
    for _ in range(HANDSHAKE_TRIES - 1):
        try:
            return await open_once()
        except InvalidMessage:
            on_retry()
    return await open_once()


def raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM handler: the bench stops as on Ctrl-C, tearing down what it started."""
    raise KeyboardInterrupt


def _finite(value: Any) -> Any:
    """The value with NaN floats replaced by None, so the JSON is standard."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


class Deadline:
    """The overall time budget, shared by the set-up steps and the run."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise BenchError(f"overall timeout ({self.seconds:g} s) reached")
        return left


def load_average() -> float:
    with contextlib.suppress(OSError, AttributeError):
        return os.getloadavg()[0]
    return math.nan


@dataclass(frozen=True)
class Stack:
    """A running benchmark set-up: the fake upstream, the server's environment, its session, its daphne processes."""

    upstream: Upstream
    env: dict[str, str]
    session_key: str
    servers: tuple[Server, ...]
    log_paths: tuple[Path, ...]


def upstream_command(ttft_ms: float, token_delay_ms: float, tokens: int) -> list[str]:
    """bench/upstream.py with these timings, as a command for ``running_fake``."""
    return [
        sys.executable, "-m", "bench.upstream",
        "--ttft-ms", str(ttft_ms), "--token-delay-ms", str(token_delay_ms), "--tokens", str(tokens),
    ]


@contextlib.contextmanager
def bench_stack(ttft_ms: float, token_delay_ms: float, tokens: int, deadline: Deadline, *, processes: int = 1,
                debug: bool = False, extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """The fake upstream, a migrated database (DATABASE_URL's or a temporary SQLite file) with the bench user's
    session, and `processes` daphne processes; all stopped (and the temporary directory removed) on exit. On an
    error inside, the daphne logs' tails go to stderr."""
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pam-bench-")))
        upstream = stack.enter_context(running_fake(upstream_command(ttft_ms, token_delay_ms, tokens)))
        env = {**server_env(upstream, workdir, debug), **(extra_env or {})}
        migrate(env, min(deadline.remaining(), 120))
        session_key = create_session(env, min(deadline.remaining(), 60))
        log_paths = server_log_paths(None, workdir, processes)
        with running_daphnes(env, log_paths, min(deadline.remaining(), 60)) as servers:
            yield Stack(upstream, env, session_key, tuple(servers), tuple(log_paths))
