"""Real server processes for tests: daphne serving the project on the test database, its providers on the fake
upstream."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from django.conf import settings as django_settings

from fake_upstream import FakeUpstream
from tests.support.paths import ROOT

TEST_API_KEY = "sk-test-not-a-real-key"
"""The API key both providers get in tests: the fake upstream takes any."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    """The test database (already created by pytest-django) as a URL for another process."""
    db = django_settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("daphne did not start listening")


@contextlib.contextmanager
def run_daphne(upstream: FakeUpstream, log_dir: Path, port: int | None = None, *, daphne_args: Sequence[str] = (),
               **extra_env: str) -> Iterator[str]:
    """A real daphne process serving the project on the test database, its providers on the fake upstream;
    yields its base URL. `port`: a given one (to start a server again where a page expects it), else a free one.
    `daphne_args`: more options for daphne (e.g. --proxy-headers). `extra_env` overrides settings (e.g.
    PAM_RESUME_GRACE_MS)."""
    port = port or free_port()
    env = {
        **os.environ,
        "DEBUG": "true",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url(),
        "OPENAI_API_KEY": TEST_API_KEY,
        "OPENAI_BASE_URL": upstream.openai_base_url,
        "ANTHROPIC_API_KEY": TEST_API_KEY,
        "ANTHROPIC_BASE_URL": upstream.anthropic_base_url,
        "PYTHONUNBUFFERED": "1",
        "PAM_REDIS_PREFIX": f"pam-test:{uuid.uuid4().hex}:",
        "PAM_SHUTDOWN_GRACE_MS": "2000",
        **extra_env,
    }
    log_path = log_dir / f"daphne-{port}-{uuid.uuid4().hex[:6]}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", *daphne_args, "-b", "127.0.0.1", "-p", str(port),
             "pam_project.asgi:application"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process, log_path)


def stop_server(process: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 15) -> None:
    """SIGTERM (the server drains), then SIGKILL if it has not exited within `timeout_s`; always reaped. Its log's
    tail goes to stderr when it did not exit cleanly."""
    process.terminate()
    started = time.monotonic()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        sys.stderr.write(f"daphne (pid {process.pid}) did not exit within {timeout_s:.0f} s of SIGTERM: killed\n")
    else:
        sys.stderr.write(f"daphne (pid {process.pid}) exited {time.monotonic() - started:.2f} s after SIGTERM\n")
    if process.returncode not in (0, -15):
        sys.stderr.write(log_path.read_text(errors="replace")[-4000:])


def daphne_log(log_dir: Path, url: str) -> Path:
    """The log file run_daphne wrote for the server at `url`."""
    return next(log_dir.glob(f"daphne-{url.rsplit(':', 1)[1]}-*.log"))
