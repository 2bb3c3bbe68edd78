"""A private, throwaway 6-node Redis Cluster (3 masters, 3 replicas) on free loopback ports, for tests.

Started with `redis-server --cluster-enabled yes` six times and `redis-cli --cluster create ... --cluster-replicas 1`;
`cleanup()` stops the servers and removes their directories."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.cluster import ClusterNode, RedisCluster

from tests.redis_server import RedisServer

NODES = 6
# NOTE: a cluster node also listens on its port + 10000 (the cluster bus), so ports stay below 55536.
PORT_RANGE = (20000, 45000)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (+10000) is free too."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(*PORT_RANGE)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterServers:
    def __init__(self, nodes: int = NODES) -> None:
        self.dir = tempfile.mkdtemp(prefix="wakaq-cluster-")
        self.servers: list[RedisServer] = []
        for i in range(nodes):
            port = cluster_port()
            node_dir = Path(self.dir) / str(i)
            node_dir.mkdir()
            self.servers.append(
                RedisServer(
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "2000",
                    "--save", "", "--appendonly", "no",
                    port=port,
                    dir=str(node_dir),
                )
            )  # fmt: skip

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    @property
    def url(self) -> str:
        """Three seed nodes are enough for the clients to find the rest."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3]) + "/0"

    def start(self, timeout: float = 60.0) -> RedisClusterServers:
        try:
            return self._start(timeout)
        except BaseException:
            self.cleanup()
            raise

    def _start(self, timeout: float) -> RedisClusterServers:
        for s in self.servers:
            s.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise FileNotFoundError("redis-cli is not installed (Debian: apt-get install redis-tools)")
        addrs = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            [cli, "--cluster", "create", *addrs, "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        self.wait_ok(timeout)
        return self

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Until every node reports cluster_state:ok and knows all the nodes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._node_ok(p) for p in self.ports):
                return
            time.sleep(0.1)
        raise TimeoutError(f"the cluster on ports {self.ports} did not become ok within {timeout}s")

    def _node_ok(self, port: int) -> bool:
        try:
            with redis.Redis(port=port, socket_timeout=2) as r:
                info = r.cluster("info")
        except redis.RedisError:
            return False
        return info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == len(self.servers)

    def client(self) -> RedisCluster:
        nodes = [ClusterNode("127.0.0.1", p) for p in self.ports[:3]]
        return RedisCluster(startup_nodes=nodes, socket_timeout=10)

    def flushall(self) -> None:
        """Empty every master (replicas follow)."""
        with self.client() as c:
            c.flushall(target_nodes=RedisCluster.PRIMARIES)

    def cleanup(self) -> None:
        for s in self.servers:
            s.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)
