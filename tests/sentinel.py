"""A Sentinel group on loopback for tests: a master, a replica (`--replicaof`) and three sentinels, on free ports,
in a temporary directory; `close()` stops every process and removes the directory."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.redis_server import RedisServer, free_port, server_binary
from tests.workers import wait_until

MASTER_NAME = "wq"


class SentinelProc:
    """`redis-server <conf> --sentinel`: the config file is the sentinel's own (it rewrites it)."""

    def __init__(self, directory: Path, master_port: int) -> None:
        self.port = free_port()
        self.dir = directory / f"sentinel-{self.port}"
        self.dir.mkdir()
        self.conf = self.dir / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SentinelProc:
        binary = server_binary()
        assert binary is not None
        with open(self.dir / "sentinel.log", "ab") as log:
            self.proc = subprocess.Popen([binary, str(self.conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_timeout=1)
        wait_until(lambda: _pings(client), 10, what=f"sentinel on port {self.port}")
        client.close()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _data_server(directory: Path, port: int | None = None, *extra: str) -> RedisServer:
    args = ["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0", *extra]
    sub = directory / f"redis-{port or 'new'}-{time.monotonic_ns()}"
    sub.mkdir()
    return RedisServer(*args, port=port, dir=str(sub))


class SentinelGroup:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="wakaq-sentinel-"))
        self.servers: list[RedisServer] = []
        self.sentinels: list[SentinelProc] = []

    def start(self) -> SentinelGroup:
        master = _data_server(self.dir).start()
        self.servers.append(master)
        replica = _data_server(self.dir, None, "--replicaof", "127.0.0.1", str(master.port)).start()
        self.servers.append(replica)
        rc = redis.Redis(port=replica.port)
        wait_until(lambda: rc.info("replication").get("master_link_status") == "up", 15, what="replica link")
        rc.close()
        self.sentinels = [SentinelProc(self.dir, master.port).start() for _ in range(3)]
        wait_until(self._sentinels_see_everyone, 20, what="sentinels to discover the replica and each other")
        return self

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def master_port(self) -> int:
        client = redis.Redis(port=self.sentinels[0].port, socket_timeout=1)
        try:
            _host, port = client.execute_command("SENTINEL", "get-master-addr-by-name", MASTER_NAME)
            return int(port)
        finally:
            client.close()

    def server_on(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port and s.proc is not None)

    def _sentinels_see_everyone(self) -> bool:
        for s in self.sentinels:
            client = redis.Redis(port=s.port, socket_timeout=1)
            try:
                info = client.execute_command("SENTINEL", "master", MASTER_NAME)
                fields = dict(zip(info[::2], info[1::2], strict=False)) if isinstance(info, list) else info
                replicas = int(fields.get(b"num-slaves", fields.get("num-slaves", 0)))
                others = int(fields.get(b"num-other-sentinels", fields.get("num-other-sentinels", 0)))
                if replicas < 1 or others < 2:
                    return False
            except redis.RedisError:
                return False
            finally:
                client.close()
        return True

    def kill_master(self) -> int:
        """kill -9 the current master; returns its port."""
        port = self.master_port()
        server = self.server_on(port)
        server.stop(kill=True)
        return port

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """Until the sentinels name another master that answers as one; returns its port."""

        def promoted() -> int | None:
            try:
                port = self.master_port()
            except (redis.RedisError, ValueError, TypeError):
                return None
            if port == old_port:
                return None
            client = redis.Redis(port=port, socket_timeout=1)
            try:
                return port if client.execute_command("ROLE")[0] in (b"master", "master") else None
            except redis.RedisError:
                return None
            finally:
                client.close()

        return wait_until(promoted, timeout, interval=0.1, what="the sentinels to promote the replica")

    def restart(self, port: int) -> None:
        """Start a fresh, empty server on a dead master's port: the sentinels turn it into a replica of the new
        master (only call this after the failover, or it would come back as an empty master)."""
        self.servers.append(_data_server(self.dir, port).start())

    def close(self) -> None:
        for s in self.sentinels:
            s.stop()
        for server in self.servers:
            server.stop(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)
