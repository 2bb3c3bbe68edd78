"""Many hosts on one machine: Redis and worker "hosts" in network namespaces of their own, joined by veth pairs.

Layout (as root; `Network.create()`):

    namespace <tag>-r (Redis)            namespace <tag>-h<k> (worker host k)
      vr<k>  10.213.<k>.1/30  <-- veth -->  vh<k>  10.213.<k>.2/30

Every address exists only inside the namespaces the test created, so no packet leaves them. Redis also listens
on a Unix socket in a temporary directory: the test process itself (producer, accounting) talks to it that way,
outside the namespaces, so a partition cuts the hosts and never the test's view of Redis.

A partition is `ip link set vr<k> down` on Redis's end of host k's pair: host k keeps its address and route, its
peer has no carrier, so its packets vanish and its calls time out (no quick "network unreachable"), as when a
switch port dies. `heal(k)` sets it up again. `close()` kills every process started in the namespaces and
deletes the namespaces (which deletes the veths), whatever state the test left them in.

WARN: the kernel here has no `sch_netem`/`matchall` (tc cannot drop packets), hence link down.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.redis_server import server_binary

#: namespace names start with this; `sweep_stale()` removes leftovers of test runs whose process is gone
NS_PREFIX = "wqt"
REDIS_PORT = 6379


class NetnsUnavailable(RuntimeError):
    """The machine cannot create network namespaces (not root, no `ip`, or no kernel support)."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def available() -> str | None:
    """None when `ip netns add` works here, else why not."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"{NS_PREFIX}probe{os.getpid()}"
    done = ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"`ip netns add` failed: {done.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


def sweep_stale() -> None:
    """Delete namespaces of earlier test runs whose pytest process died before cleaning up."""
    listing = ip("netns", "list", check=False).stdout.split()
    for name in listing:
        if not name.startswith(NS_PREFIX) or "-" not in name:
            continue
        owner = name[len(NS_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            _kill_all_in(name)
            ip("netns", "del", name, check=False)


def _kill_all_in(ns: str) -> None:
    pids = ip("netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


class Network:
    """Redis's namespace and `hosts` worker namespaces, one veth pair each."""

    def __init__(self, hosts: int) -> None:
        self.tag = f"{NS_PREFIX}{os.getpid()}-{os.urandom(2).hex()}"
        self.redis_ns = f"{self.tag}-r"
        self.host_ns = [f"{self.tag}-h{k}" for k in range(1, hosts + 1)]
        self.dir = tempfile.mkdtemp(prefix="wakaq-netns-")
        os.chmod(self.dir, 0o755)
        self.socket = str(Path(self.dir) / "redis.sock")
        self.redis: subprocess.Popen[bytes] | None = None

    # ---- topology ---------------------------------------------------------------------------------------

    def create(self) -> Network:
        sweep_stale()
        try:
            for ns in [self.redis_ns, *self.host_ns]:
                ip("netns", "add", ns)
                ip("-n", ns, "link", "set", "lo", "up")
            for k, ns in enumerate(self.host_ns, start=1):
                self._pair(k, ns)
        except subprocess.CalledProcessError as e:
            self.close()
            raise NetnsUnavailable(f"{' '.join(e.cmd)}: {e.stderr.strip()}") from e
        return self

    def _pair(self, k: int, ns: str) -> None:
        red, host = f"vr{k}", f"vh{k}"
        ip("-n", self.redis_ns, "link", "add", red, "type", "veth", "peer", "name", host, "netns", ns)
        ip("-n", self.redis_ns, "addr", "add", f"10.213.{k}.1/30", "dev", red)
        ip("-n", ns, "addr", "add", f"10.213.{k}.2/30", "dev", host)
        ip("-n", self.redis_ns, "link", "set", red, "up")
        ip("-n", ns, "link", "set", host, "up")

    def redis_url(self, k: int) -> str:
        """The URL host k uses: Redis's address on host k's link."""
        return f"redis://10.213.{k}.1:{REDIS_PORT}/0"

    @property
    def unix_url(self) -> str:
        """The test's own way in (outside every namespace, unaffected by partitions)."""
        return f"unix://{self.socket}?db=0"

    def exec_prefix(self, k: int) -> list[str]:
        """Command prefix that runs a program on host k."""
        return ["ip", "netns", "exec", self.host_ns[k - 1]]

    # ---- partitions -------------------------------------------------------------------------------------

    def cut(self, k: int) -> None:
        ip("-n", self.redis_ns, "link", "set", f"vr{k}", "down")

    def heal(self, k: int) -> None:
        ip("-n", self.redis_ns, "link", "set", f"vr{k}", "up")

    # ---- Redis ------------------------------------------------------------------------------------------

    def start_redis(self, *extra: str, timeout: float = 10.0) -> None:
        binary = server_binary()
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (Debian: apt-get install redis-server)")
        # NOTE: bound to Redis's end of each link only; protected mode (loopback only without a password) off,
        # since those addresses exist nowhere but in this test's namespaces.
        links = [f"10.213.{k}.1" for k in range(1, len(self.host_ns) + 1)]
        args = ["ip", "netns", "exec", self.redis_ns, binary, "--port", str(REDIS_PORT), "--bind", *links]
        args += ["--protected-mode", "no"]
        args += ["--unixsocket", self.socket, "--unixsocketperm", "777", "--dir", self.dir, "--save", ""]
        args += ["--appendonly", "no", *extra]
        with open(Path(self.dir) / "redis.log", "ab") as log:
            self.redis = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._ping():
            if self.redis.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server in {self.redis_ns} did not start: {self.redis_log()[-2000:]}")
            time.sleep(0.02)

    def _ping(self) -> bool:
        import socket

        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(0.5)
                s.connect(self.socket)
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def redis_log(self) -> str:
        try:
            return (Path(self.dir) / "redis.log").read_text(errors="replace")
        except OSError:
            return ""

    # ---- cleanup ----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill everything running in the namespaces, delete them, remove the directory. Safe to call twice."""
        for ns in [*self.host_ns, self.redis_ns]:
            _kill_all_in(ns)
        if self.redis is not None and self.redis.poll() is None:
            self.redis.kill()
        if self.redis is not None:
            self.redis.wait(10)
        for ns in [*self.host_ns, self.redis_ns]:
            ip("netns", "del", ns, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """Namespaces of this network that still exist (for the cleanup test)."""
        listing = ip("netns", "list", check=False).stdout.split()
        return [name for name in listing if name.startswith(self.tag)]
