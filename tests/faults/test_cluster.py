"""Redis Cluster topology changes mid-drain: a manual failover of the master that holds the queues' slot, and a
migration of that slot to another master (what `redis-cli --cluster reshard` does, for that one slot). Each
scenario runs its own 6-node cluster (tests/redis_cluster.py)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from tests.faults import driver
from tests.faults.app import build
from tests.redis_cluster import RedisClusterServers
from tests.redis_server import in_ci, redis_available
from tests.workers import StartWorker, wait_until
from wakaq.keys import Keys

pytestmark = pytest.mark.timeout(180)

N = 5000
KEYS = Keys(cluster=True)


@pytest.fixture
def cluster() -> Iterator[RedisClusterServers]:
    if not redis_available():
        if in_ci():
            pytest.fail("redis-server is missing; CI must install it (.ci/run does)")
        pytest.skip("redis-server is not installed")
    servers = RedisClusterServers().start()
    try:
        yield servers
    finally:
        servers.cleanup()


@pytest.fixture
def client(cluster: RedisClusterServers) -> Iterator[RedisCluster]:
    c = cluster.client()
    try:
        yield c
    finally:
        c.close()


def _node(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=5)


def _slot_owner(cluster: RedisClusterServers, slot: int) -> tuple[int, str]:
    """(port, node id) of the master serving `slot`, as the nodes themselves say."""
    with _node(cluster.ports[0]) as r:
        for start, end, master, *_ in r.execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                port = int(master[1])
                with _node(port) as m:
                    return port, m.execute_command("CLUSTER MYID").decode()
    raise AssertionError(f"no node serves slot {slot}")


def _masters(cluster: RedisClusterServers) -> dict[int, str]:
    out = {}
    for port in cluster.ports:
        with _node(port) as r:
            if r.info("replication")["role"] == "master":
                out[port] = r.execute_command("CLUSTER MYID").decode()
    return out


def _drain_with(client: RedisCluster, cluster: RedisClusterServers, start_worker: StartWorker, fault: Any) -> Any:
    """5,000 tasks, two daemons; `fault()` once a fifth of them ran; then account for every task."""
    started = time.monotonic()
    url = cluster.url
    app = build(url)
    workers = [start_worker(url=url, concurrency=2, socket_timeout=2.0) for _ in range(2)]
    app.tasks["work"].delay_many(((i, 1.0), {}) for i in range(N))
    wait_until(lambda: client.hlen("runs") >= N // 5, timeout=60, what="a fifth of the tasks to run")
    note = fault()
    driver.wait_drained(client, lambda: driver.done_count(client, N), timeout=120)
    acc = driver.account(client, range(N))
    died: set[int] = set()
    errors = 0
    for w in workers:
        died |= driver.died_children(w.log_text())
        errors += sum("redis" in line and "ERROR" in line for line in w.log_text().splitlines())
        assert w.proc.poll() is None, "the daemon survived"
    return acc, started, f"{note}; {errors} redis errors logged by the workers", died


def test_cluster_failover_of_the_queues_master_mid_drain(
    cluster: RedisClusterServers, client: RedisCluster, start_worker: StartWorker
) -> None:
    """CLUSTER FAILOVER on the replica of the master holding `{wakaq}`: clients follow the new master (MOVED,
    refreshed slots); no task is lost, none runs twice."""
    slot = client.keyslot(KEYS.queue("faults"))
    old_port, _old_id = _slot_owner(cluster, slot)

    def failover() -> str:
        with _node(old_port) as m:
            replica_port = int(m.info("replication")["slave0"]["port"])
        # NOTE: Redis aborts a manual failover that does not complete within 5 s (CLUSTER_MF_TIMEOUT), which
        # happens on a loaded machine; asking again is what an operator does, and the drain goes on meanwhile.
        deadline, attempts = time.monotonic() + 60, 0
        while _slot_owner(cluster, slot)[0] != replica_port:
            assert time.monotonic() < deadline, f"no failover after {attempts} CLUSTER FAILOVER requests"
            with _node(replica_port) as r:
                r.execute_command("CLUSTER FAILOVER")
            attempts += 1
            try:
                wait_until(lambda: _slot_owner(cluster, slot)[0] == replica_port, timeout=8, what="the failover")
            except AssertionError:
                continue
        return f"slot {slot} moved from :{old_port} to its replica :{replica_port} ({attempts} request(s))"

    acc, started, note, died = _drain_with(client, cluster, start_worker, failover)
    driver.record(acc.row("cluster: CLUSTER FAILOVER mid-drain", started, note))
    assert acc.lost == set(), f"lost: {sorted(acc.lost)[:20]}"
    assert acc.failed == {}, acc.failed
    assert acc.unexplained_duplicates(died) == {}


def test_cluster_slot_migration_mid_drain(
    cluster: RedisClusterServers, client: RedisCluster, start_worker: StartWorker
) -> None:
    """Move the queues' slot to another master key by key (IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE: the steps of
    `redis-cli --cluster reshard`) while tasks drain: scripts meet ASK and TRYAGAIN meanwhile; nothing is lost."""
    slot = client.keyslot(KEYS.queue("faults"))
    src_port, src_id = _slot_owner(cluster, slot)
    dst_port, dst_id = next((p, i) for p, i in _masters(cluster).items() if p != src_port)

    def migrate() -> str:
        moved = 0
        with _node(src_port) as src, _node(dst_port) as dst:
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
            deadline = time.monotonic() + 60
            while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 1):
                assert time.monotonic() < deadline, "the slot did not empty within 60 s"
                src.execute_command("MIGRATE", "127.0.0.1", dst_port, "", 0, 5000, "KEYS", *keys)
                moved += len(keys)
                time.sleep(0.2)  # key by key, so the workers meet a half-migrated slot for a while
            for port in _masters(cluster):
                with _node(port) as r:
                    r.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
        wait_until(lambda: _slot_owner(cluster, slot)[0] == dst_port, timeout=30, what="the migration")
        return f"slot {slot} ({moved} key moves) from :{src_port} to :{dst_port}"

    acc, started, note, died = _drain_with(client, cluster, start_worker, migrate)
    driver.record(acc.row("cluster: slot migration mid-drain", started, note))
    assert acc.lost == set(), f"lost: {sorted(acc.lost)[:20]}"
    assert acc.failed == {}, acc.failed
    assert acc.unexplained_duplicates(died) == {}


def _first_slot_of(cluster: RedisClusterServers, port: int) -> int:
    with _node(cluster.ports[0]) as r:
        return min(start for start, _end, master, *_ in r.execute_command("CLUSTER SLOTS") if int(master[1]) == port)


def test_cluster_reshard_with_redis_cli_mid_drain(
    cluster: RedisClusterServers, client: RedisCluster, start_worker: StartWorker
) -> None:
    """`redis-cli --cluster reshard` itself, mid-drain, moving a range of slots that includes the queues' slot.

    NOTE: redis-cli takes a source's slots from its lowest one up, so moving (queues' slot - first slot + 1)
    slots is the smallest reshard that moves the queues."""
    cli = shutil.which("redis-cli")
    assert cli is not None, "redis-cli is missing (it ships with Debian's redis-server package)"
    slot = client.keyslot(KEYS.queue("faults"))
    src_port, src_id = _slot_owner(cluster, slot)
    dst_port, dst_id = next((p, i) for p, i in _masters(cluster).items() if p != src_port)
    count = slot - _first_slot_of(cluster, src_port) + 1

    def reshard() -> str:
        started = time.monotonic()
        args = [cli, "--cluster", "reshard", f"127.0.0.1:{src_port}", "--cluster-from", src_id]
        args += ["--cluster-to", dst_id, "--cluster-slots", str(count), "--cluster-yes"]
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        wait_until(lambda: _slot_owner(cluster, slot)[0] == dst_port, timeout=30, what="the reshard")
        took = time.monotonic() - started
        return f"redis-cli reshard: {count} slots incl. {slot}, :{src_port} to :{dst_port} in {took:.1f}s"

    acc, started, note, died = _drain_with(client, cluster, start_worker, reshard)
    driver.record(acc.row("cluster: redis-cli --cluster reshard mid-drain", started, note))
    assert acc.lost == set(), f"lost: {sorted(acc.lost)[:20]}"
    assert acc.failed == {}, acc.failed
    assert acc.unexplained_duplicates(died) == {}
