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
DEFAULT_HEARTBEAT_TIMEOUT = 15.0
DEFAULT_WORKER_LOG_LEVEL = logging.INFO
DEFAULT_SCHEDULER_LOG_LEVEL = logging.DEBUG
URL_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")

# ---- queue names ----------------------------------------------------------------------------------------------
# NOTE: a queue's list lives at `<prefix>:<name>`, so a name starting like one of wakaq's own key families would
# share keys with them (a queue named `eta:x` would BE the eta set of queue `x`).
RESERVED_QUEUE_PREFIXES = ("eta:", "bell:", "failed:", "bcast:", "inflight:", "hb:", "sched:")
RESERVED_QUEUE_NAMES = ("daemons", "done")
KEY_PREFIX_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"

# ---- concurrency expressions ----------------------------------------------------------------------------------
EXPR_MAX_LENGTH = 200
EXPR_MAX_DEPTH = 20
EXPR_MAX_VALUE = 1_000_000

# ---- exit codes of the command line tools ---------------------------------------------------------------------
EXIT_OK = 0
EXIT_FAILURE = 1  # the command ran and failed (e.g. a task could not be re-enqueued)
EXIT_USAGE = 2  # bad arguments or an --app that cannot be imported (argparse uses 2 as well)
EXIT_UNAVAILABLE = 3  # Redis is unreachable or timed out
