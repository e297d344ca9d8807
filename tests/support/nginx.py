"""A real nginx for tests: Debian's binary in the foreground, with a prefix, pid, logs and temp files of its own,
serving deploy/nginx.conf with the test's ports and static directory put in its marked lines (no second copy)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.paths import ROOT
from tests.support.servers import free_port, wait_for_port

NGINX = Path("/usr/sbin/nginx")
SITE_CONF = ROOT / "deploy" / "nginx.conf"
ACCESS_LOG_FORMAT = "$request_method $uri $status upstream=$upstream_addr"
"""What the test's access log records of each request: which daphne process(es) nginx passed it to."""

_UPSTREAM_SERVER = re.compile(r"^(\s*)server 127\.0\.0\.1:\d+( [^;]*)?;[^\n]*\n", re.MULTILINE)
_LISTEN = re.compile(r"^(\s*)listen 80;", re.MULTILINE)
_STATIC_ALIAS = re.compile(r"^(\s*)alias /srv/pam/staticfiles/;", re.MULTILINE)


def nginx_required() -> bool:
    """Whether a missing nginx fails the test rather than skipping it: under CI (.ci/run installs nginx)."""
    return os.environ.get("CI", "").lower() in ("1", "true") or os.environ.get("PAM_REQUIRE_NGINX") == "1"


def render_site(text: str, *, upstream_ports: list[int], listen_port: int, static_root: Path) -> str:
    """deploy/nginx.conf with the given daphne ports, listening on 127.0.0.1 only, serving `static_root`.

    Each marked line must be found exactly as expected, so a change to the file that this no longer fits fails
    loudly instead of testing something else."""
    servers = _UPSTREAM_SERVER.findall(text)
    if len(servers) < 1:
        raise ValueError("deploy/nginx.conf: no `server 127.0.0.1:PORT ...;` line in the upstream")
    indent, options = servers[0]
    lines = "".join(f"{indent}server 127.0.0.1:{port}{options};\n" for port in upstream_ports)
    text = _UPSTREAM_SERVER.sub("", text, count=len(servers) - 1)
    text = _UPSTREAM_SERVER.sub(lines.replace("\\", "\\\\"), text, count=1)
    text, listens = _LISTEN.subn(rf"\g<1>listen 127.0.0.1:{listen_port};", text)
    text, aliases = _STATIC_ALIAS.subn(rf"\g<1>alias {static_root}/;", text)
    if listens != 1 or aliases != 1:
        raise ValueError(f"deploy/nginx.conf: expected one `listen 80;` and one static alias, found {listens}, "
                         f"{aliases}")
    return text


def main_conf(prefix: Path) -> str:
    """The nginx.conf around the site: foreground, everything it writes under `prefix`."""
    # As root, workers would run as `nobody`, which cannot read the test's private temporary directories.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp_paths = "".join(f"    {name}_temp_path {prefix / name};\n"
                         for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (
        f"daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} info;\n"
        f"{user}events {{ worker_connections 1024; }}\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n"
        f"{temp_paths}"
        f"    log_format upstreams '{ACCESS_LOG_FORMAT}';\n"
        f"    access_log {prefix / 'access.log'} upstreams;\n"
        f"    include {prefix / 'site.conf'};\n"
        "}\n"
    )


@contextlib.contextmanager
def run_nginx(prefix: Path, *, upstream_ports: list[int], static_root: Path) -> Iterator[str]:
    """nginx in front of the daphne processes on `upstream_ports`; yields its base URL. Stopped (fast) at the end."""
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (prefix / "site.conf").write_text(render_site(SITE_CONF.read_text(), upstream_ports=upstream_ports,
                                                  listen_port=port, static_root=static_root))
    conf = prefix / "nginx.conf"
    conf.write_text(main_conf(prefix))
    command = [str(NGINX), "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    subprocess.run([*command, "-t", "-q"], check=True, capture_output=True, timeout=30)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def check_in_debian_layout(prefix: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` of Debian's own /etc/nginx (copied under `prefix`) with deploy/nginx.conf as conf.d/pam.conf and the
    default site removed, as README's steps install it."""
    etc = prefix / "etc"
    shutil.copytree("/etc/nginx", etc, symlinks=True)
    (etc / "sites-enabled" / "default").unlink(missing_ok=True)
    shutil.copy(SITE_CONF, etc / "conf.d" / "pam.conf")
    main = etc / "nginx.conf"
    main.write_text(main.read_text().replace("/etc/nginx", str(etc)))
    return subprocess.run([str(NGINX), "-t", "-p", str(prefix), "-c", str(main), "-e", str(prefix / "error.log")],
                          capture_output=True, text=True, timeout=30)


def upstreams_of(prefix: Path, uri_prefix: str) -> list[str]:
    """For each logged request whose path starts with `uri_prefix`, in order, the upstream address(es) it went to
    ("-": nginx answered it itself)."""
    entries = []
    for line in (prefix / "access.log").read_text().splitlines():
        _, uri, _, upstream = line.split(" ", 3)
        if uri.startswith(uri_prefix):
            entries.append(upstream.removeprefix("upstream="))
    return entries
