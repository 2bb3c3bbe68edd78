"""Types of the native extension `wakaq._wakaq` (Rust, PyO3). Private: import from `wakaq` instead."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__version__: str

# ---- codec ------------------------------------------------------------------------------------------------

def packb(obj: Any) -> bytes:
    """Encode one value as msgpack (deterministic). TypeError naming the path for unsupported types."""

def unpackb(data: bytes) -> Any:
    """Decode msgpack bytes produced by `packb` (or any msgpack). PayloadError on bad input."""

def encode_task(name: str, args: Sequence[Any], kwargs: Mapping[str, Any], retry: int = 0) -> bytes:
    """Encode a task payload: msgpack map {name, args, kwargs, retry}."""

def decode_task(data: bytes) -> tuple[str, list[Any], dict[str, Any], int]:
    """Decode a task payload (msgpack, or WakaQ's JSON when it starts with `{`). PayloadError on bad input."""

# ---- broker -----------------------------------------------------------------------------------------------

def key_layout(prefix: str) -> dict[str, str]:
    """Key name templates, e.g. {'queue': 'wakaq:{queue}', ...}; used to check python/wakaq/keys.py agrees."""

class Broker:
    """Producer side connection (thread-safe, GIL released during I/O)."""

    def __init__(
        self,
        url: str,
        prefix: str = "wakaq",
        socket_timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> None: ...
    def push(self, queue: str, name: str, args: Sequence[Any], kwargs: Mapping[str, Any], retry: int = 0) -> None: ...
    def push_eta(self, queue: str, name: str, args: Sequence[Any], kwargs: Mapping[str, Any], due: float) -> None: ...
    def push_many(self, items: Sequence[tuple[str, str, Sequence[Any], Mapping[str, Any]]]) -> int: ...
    def broadcast(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int: ...
    def ping(self) -> bool: ...

class Consumer:
    """One forked child's connection to its queues (not shared between processes)."""

    def __init__(
        self,
        url: str,
        prefix: str,
        daemon_id: str,
        queues: Sequence[str],
        wait_timeout: float,
        socket_timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> None: ...
    def claim(self, acks: Sequence[int], max_count: int) -> list[tuple[int, int, bytes]]:
        """Ack finished seqs and claim up to max_count: [(seq, queue index, element)]; index 0 is broadcast."""
    def wait(self, timeout: float) -> bool:
        """Block on the queues' bells (GIL released); True when a token was taken."""
    def fail(self, seq: int, queue: str, payload: bytes, reason: str, traceback: str) -> None: ...
    def retry(self, seq: int, queue: str, name: str, args: Sequence[Any], kwargs: Mapping[str, Any], retry: int) -> None: ...
    def release(self, seqs: Sequence[int]) -> int:
        """Return claimed, not started tasks to the front of their queues (shutdown)."""

def split_element(element: bytes) -> tuple[int, bytes]:
    """(delivery count, payload) of a queue element."""

# ---- supervisor -------------------------------------------------------------------------------------------

def run_worker(config: Mapping[str, Any], child_main: Callable[[int], int]) -> int:
    """Run the worker daemon's parent loop until SIGINT/SIGTERM/SIGQUIT; returns the exit code (0).

    Forks `config["concurrency"]` children that each call `child_main(slot)` (its return value, or a
    SystemExit code, is the child's exit status; an exception prints its traceback and exits 1). Config keys:
    concurrency (required), max_mem_percent, log_file, log_level, wait_timeout, daemon_id, hostname,
    heartbeat_interval, heartbeat_timeout, shutdown_timeout (None = wait forever), url (None = no Redis),
    prefix, queues, socket_timeout, connect_timeout. ValueError for an unknown key or a bad value.
    """

def task_started(seq: int, soft_timeout: float, hard_timeout: float) -> None:
    """Child: a sync task started (seconds from now, 0 = no timeout); the watchdog reads it from shared memory.
    A no-op outside a child forked by `run_worker`."""

def task_finished() -> None:
    """Child: the sync task finished (also counts it in the daemon's tasks_done). No-op outside a child."""

def async_deadline(seq: int, hard_timeout_at: float) -> None:
    """Child: the earliest hard deadline (`time.monotonic()` seconds) of its async tasks, 0 for none.
    No-op outside a child."""
