"""Defaults, reserved names and exit codes in one place (arq's habit)."""

from __future__ import annotations

import logging

# ---- configuration defaults (WakaQ's values) ----------------------------------------------------------------
DEFAULT_HOST = "localhost"
DEFAULT_PORT = 6379
DEFAULT_DB = 0
DEFAULT_SOCKET_TIMEOUT = 15.0
DEFAULT_CONNECT_TIMEOUT = 15.0
DEFAULT_HEALTH_CHECK_INTERVAL = 30.0
DEFAULT_WAIT_TIMEOUT = 1.0
#: how long a task's result record is kept (wakaq.results), seconds: one day
DEFAULT_RESULT_TTL = 86400.0
DEFAULT_HEARTBEAT_TIMEOUT = 15.0
DEFAULT_WORKER_LOG_LEVEL = logging.INFO
#: how the worker starts its children: "fork" (the default) or "spawn" (fresh interpreters, fork+exec)
START_METHODS = ("fork", "spawn")
DEFAULT_SCHEDULER_LOG_LEVEL = logging.DEBUG
# NOTE: `redis+cluster://host:port,host:port/` names a Redis Cluster by some of its nodes (the seeds); the scheme
# decides every client, so a later scheme (sentinel) slots in beside it.
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
URL_SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES, "redis+sentinel")

# ---- queue names ----------------------------------------------------------------------------------------------
# NOTE: a queue's list lives at `<prefix>:<name>`, so a name starting like one of wakaq's own key families would
# share keys with them (a queue named `eta:x` would BE the eta set of queue `x`).
RESERVED_QUEUE_PREFIXES = (
    "eta:",
    "bell:",
    "failed:",
    "bcast:",
    "inflight:",
    "hb:",
    "sched:",
    "stats:",
    "daemon:",
    "rate:",
    "parked:",
    "wf:",
)
#: NOTE: "parked" is the registry of parked lists (wakaq.keys.Keys.parked_registry)
RESERVED_QUEUE_NAMES = ("daemons", "done", "parked")
KEY_PREFIX_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"

# ---- task counters (python/wakaq/stats.py; rust/src/supervisor/counters.rs has the same values) -----------------
#: upper bounds (seconds) of the run-time histogram's buckets, log-spaced 1-2.5-5 from 100 us to 100 s, then +Inf
RUNTIME_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0,
)  # fmt: skip
#: kinds of failure counted per task: an exception (also soft timeouts out of retries and unknown task names), a
#: hard timeout (SIGKILL by the parent), dead-listed (the child died while running it too often), undecodable payload,
#: cancelled by an admin while it ran (wakaq.cancel)
STATS_FAILED_KINDS = ("exception", "hard_timeout", "dead", "undecodable", "cancelled")
#: the failure reason of a task an admin cancelled: removed before it ran (wakaq.cancel) or interrupted (the worker)
CANCELLED_REASON = "cancelled by admin"
#: separator inside stats hash fields `<counter>\x1f<queue>\x1f<task>` (queue names hold no control characters)
STATS_SEP = "\x1f"

# ---- concurrency expressions ----------------------------------------------------------------------------------
EXPR_MAX_LENGTH = 200
EXPR_MAX_DEPTH = 20
EXPR_MAX_VALUE = 1_000_000

# ---- exit codes of the command line tools ---------------------------------------------------------------------
EXIT_OK = 0
EXIT_FAILURE = 1  # the command ran and failed (e.g. a task could not be re-enqueued)
EXIT_USAGE = 2  # bad arguments or an --app that cannot be imported (argparse uses 2 as well)
EXIT_UNAVAILABLE = 3  # Redis is unreachable or timed out
