"""A private, throwaway redis-server for tests, benchmarks and the demo."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: the server binary the suite starts: `WAKAQ_REDIS_SERVER` (a path or a name on PATH, e.g. a valkey-server for
#: `make test-valkey`), else `redis-server`
SERVER_ENV = "WAKAQ_REDIS_SERVER"


def server_binary() -> str | None:
    return shutil.which(os.environ.get(SERVER_ENV) or "redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """Starts `redis-server` on a free loopback port in a temporary directory; `stop()` removes both.

    `tls_port=True` (a free port) or a number also listens for TLS there; pass the certificate options
    (`--tls-cert-file`, ...) in `extra_args`. The plain port stays open: readiness is checked on it."""

    def __init__(
        self, *extra_args: str, port: int | None = None, dir: str | None = None, tls_port: int | bool | None = None
    ) -> None:
        binary = server_binary()
        if binary is None:
            wanted = os.environ.get(SERVER_ENV) or "redis-server"
            raise FileNotFoundError(f"{wanted} is not installed (Debian: apt-get install redis-server)")
        self.binary = binary
        self.port = port or free_port()
        self._own_dir = dir is None
        self.dir = dir or tempfile.mkdtemp(prefix="wakaq-redis-")
        self.extra_args = list(extra_args) or ["--save", "", "--appendonly", "no"]
        self.tls_port = free_port() if tls_port is True else (tls_port or None)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def tls_url(self) -> str:
        """`rediss://` URL of the TLS port, by the name `localhost` (what test certificates are made for)."""
        if self.tls_port is None:
            raise ValueError("this server has no TLS port")
        return f"rediss://localhost:{self.tls_port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir]
        if self.tls_port is not None:
            args += ["--tls-port", str(self.tls_port)]
        log = open(Path(self.dir) / "redis.log", "ab")
        self.proc = subprocess.Popen(args + self.extra_args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {self.log_tail()}")
            if self.ping():
                return self
            time.sleep(0.02)
        raise TimeoutError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                # NOTE: a server with a password answers NOAUTH: it is up all the same.
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH")) or s.recv(64) != b""
        except OSError:
            return False

    def log_tail(self) -> str:
        try:
            return (Path(self.dir) / "redis.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def redis_available() -> bool:
    return server_binary() is not None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
