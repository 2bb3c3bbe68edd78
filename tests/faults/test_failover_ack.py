"""An ack that a failover lost: the new master (a replica that had not seen the last writes) still holds the
in-flight field of a task that ran, for a child that is alive. Nothing requeues a live child's fields, so without
the reconcile after a new connection (consumer.rs `reconcile`) the task sat in flight until the daemon stopped.

Failing output before the fix (`tests/faults/test_sentinel.py`, the same loss in a real failover, now and then):

    AssertionError: did not settle: pending 0, in flight 1, runs 5010

Here the lost ack is made exactly: a field for a seq the child never claimed is written into its in-flight hash,
then every client connection is killed (what a failover does to the child's connections).
"""

from __future__ import annotations

import pytest
import redis

from tests.keyspace import KEYS, single_redis_only
from tests.workers import StartWorker, events, wait_until
from wakaq._wakaq import encode_task
from wakaq.exceptions import BrokerError

pytestmark = [pytest.mark.timeout(60), single_redis_only]


def test_a_stale_field_of_a_live_child_is_requeued_after_a_new_connection(
    start_worker: StartWorker, rclient: redis.Redis
) -> None:
    worker = start_worker("tests.apps.worker_app.wakaq", concurrency=1)
    try:
        (child,) = worker.children()
        from tests.apps.worker_app import default_task

        default_task.delay(1)
        wait_until(lambda: events(rclient, "default_task"), what="the first task")
        (daemon,) = [d.decode() for d in rclient.smembers(KEYS.daemons)]
        inflight = KEYS.inflight(daemon)
        field = f"{child}:999999"
        element = encode_task("default_task", [7], {}, 0)
        rclient.hset(inflight, field, b"low\n" + element)

        # NOTE: the control: with the connection unchanged, the field stays (the child only checks after a new one)
        default_task.delay(2)
        wait_until(lambda: len(events(rclient, "default_task")) >= 2, what="the second task")
        assert rclient.hexists(inflight, field)

        killed = rclient.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 2, f"killed {killed} connections"
        try:
            default_task.delay(3)
        except BrokerError:  # NOTE: this process's connection was killed too; a push is never resent by itself
            default_task.delay(3)
        done = wait_until(
            lambda: sorted(e["i"] for e in events(rclient, "default_task")) == [1, 2, 3, 7] or None,
            timeout=15,
            what="the stale task requeued and run",
        )
        assert done
        assert not rclient.hexists(inflight, field)
        assert worker.children() == [child], "the child kept running"
    finally:
        worker.stop()
