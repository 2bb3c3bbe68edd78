"""Which Redis the integration tests run against, and the key names there.

`WAKAQ_TEST_CLUSTER=1` runs them on a private 6-node Redis Cluster (tests/redis_cluster.py) instead of one
redis-server: the `redis_url` fixture gives a `redis+cluster://` URL and `rclient` a `RedisCluster`. Tests name keys
through `KEYS` (never a literal `"wakaq:low"`), so they hold in both layouts."""

from __future__ import annotations

import os
from typing import Any

import pytest

from wakaq import _wakaq
from wakaq.keys import DEFAULT_PREFIX, Keys

CLUSTER = os.environ.get("WAKAQ_TEST_CLUSTER", "").lower() in ("1", "true", "yes")
KEYS = Keys(DEFAULT_PREFIX, cluster=CLUSTER)

#: for a test of one server's own behaviour (MONITOR on it, stopping it): skipped in cluster mode
single_redis_only = pytest.mark.skipif(CLUSTER, reason="watches or stops the one redis-server")


def subscribers(client: Any, channel: str) -> int:
    """Subscribers of `channel`; on a cluster summed over the nodes (PUBSUB NUMSUB counts a node's own)."""
    if not CLUSTER:
        return int(client.pubsub_numsub(channel)[0][1])
    total = 0
    for node in client.get_nodes():
        total += int(client.pubsub_numsub(channel, target_nodes=node)[0][1])
    return total


def scan_keys(client: Any, pattern: str) -> list[bytes]:
    """KEYS `pattern` (over every master on a cluster)."""
    if not CLUSTER:
        return list(client.keys(pattern))
    return list(client.keys(pattern, target_nodes=client.PRIMARIES))


def pose_as_daemon(client: Any, daemon: str = "listener:1:aa") -> None:
    """Register a live daemon (no process behind it): `broadcast()` hands its task to every live registered daemon,
    so a test can read what one would get from its broadcast list (`KEYS.broadcast_queue(daemon)`)."""
    client.sadd(KEYS.daemons, daemon)
    client.set(KEYS.heartbeat(daemon), "{}", px=60_000)


def consumer(
    url: str,
    queues: list[str],
    daemon: str = "d1",
    *,
    client: Any = None,
    prefix: str = DEFAULT_PREFIX,
    wait_timeout: float = 1.0,
    **settings: Any,
) -> _wakaq.Consumer:
    """A worker child's Consumer of `queues` as daemon `daemon`, built as a daemon builds it: from one
    `_wakaq.Settings` (`settings`: more of its keys, e.g. `socket_timeout`, `task_rates`). With `client`, the daemon
    is registered first (claim.lua refuses a daemon that is not)."""
    if client is not None:
        keys = Keys(prefix, cluster=CLUSTER)
        client.sadd(keys.daemons, daemon)
        # NOTE: with a heartbeat, so a live daemon's reaper (another test's worker still stopping) leaves it alone
        client.set(keys.heartbeat(daemon), "{}", px=120_000)
    config = {"concurrency": 1, "url": url, "prefix": prefix, "daemon_id": daemon, "queues": queues}
    return _wakaq.Consumer(_wakaq.Settings({**config, "wait_timeout": wait_timeout, **settings}))


#: the Lua scripts' folder (rust/src/broker/lua)


def lua_script(name: str) -> str:
    """A script's text as rust/src/broker/scripts.rs builds it (the same bytes, so the same SHA): what it uses of
    lib.lua and its helpers, then the script (`name`: its file, "finish.lua")."""
    text = _wakaq.script_text(name.removesuffix(".lua"))
    assert text is not None, f"no script {name}"
    return text
