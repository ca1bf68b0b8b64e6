"""A real nginx on loopback for download tests: its own prefix, logs and temp paths, and an
access log recording status, body bytes and the Range header of every request, which is how the
tests prove what went over the wire."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# Locations over the same files: plain, slow for un-ranged requests only (a first download can be
# killed or time out mid-way, its resumption is fast), and one that ignores Range (answers 200);
# /busy/ answers every request with 503.
# A single foreground process (no master/worker split): one pid to stop, and no worker that
# switches to an unprivileged user who could not read the test's files.
NGINX_CONF = """\
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 32; }}
http {{
    log_format fields '$status $body_bytes_sent "$http_range" $request_uri';
    access_log {tmp}/access.log fields;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    map $http_range $first_request_rate {{ "" 4k; default 0; }}
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location /slow/ {{ alias {www}/; limit_rate $first_request_rate; }}
        location /norange/ {{ alias {www}/; max_ranges 0; }}
        location /busy/ {{ return 503; }}
    }}
}}
"""


@dataclass(frozen=True)
class Request:
    """One access-log line."""

    status: int
    body_bytes: int
    range: str


@dataclass(frozen=True)
class Server:
    """A running nginx: where it listens, what it serves and what it logged."""

    port: int
    www: Path
    access_log: Path

    def url(self, name: str, location: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{location}{name}"

    def requests(self, name: str, location: str = "") -> list[Request]:
        """Logged requests for ``name`` under ``location``, oldest first."""
        found = []
        for line in self.access_log.read_text().splitlines():
            status, body, rest = line.split(" ", 2)
            range_header, uri = rest.rsplit(" ", 1)
            if uri == f"/{location}{name}":
                found.append(Request(int(status), int(body), range_header.strip('"')))
        return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_nginx(tmp: Path, www: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start nginx on a free port (retrying if another process takes it first); wait until it listens."""
    for _ in range(3):
        port = _free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, www=www, port=port))
        proc = subprocess.Popen(
            [NGINX, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc, port
            except OSError:
                time.sleep(0.05)
        proc.kill()
        proc.wait()
    raise RuntimeError(f"nginx did not start: {(tmp / 'error.log').read_text()}")


@contextlib.contextmanager
def serving(tmp: Path, www: Path) -> Iterator[Server]:
    """nginx serving ``www`` until the block ends."""
    proc, port = _start_nginx(tmp, www)
    try:
        yield Server(port, www, tmp / "access.log")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
