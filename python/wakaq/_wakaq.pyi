"""Types of the native extension `wakaq._wakaq` (Rust, PyO3). Private: import from `wakaq` instead."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, final

__version__: str
__all__ = [
    "Broker",
    "ClaimedTask",
    "Consumer",
    "Settings",
    "__version__",
    "async_deadline",
    "count_task",
    "counter_cell",
    "decode_task",
    "decode_task_meta",
    "encode_task",
    "encode_task_json",
    "key_layout",
    "packb",
    "retried_task",
    "run_spawned_child",
    "run_worker",
    "script_text",
    "split_element",
    "take_cancels",
    "task_finished",
    "task_handling",
    "task_started",
    "unpackb",
]

# ---- codec ------------------------------------------------------------------------------------------------

def packb(obj: Any) -> bytes:
    """Encode one value as msgpack (deterministic). TypeError naming the path for unsupported types."""

def unpackb(data: bytes) -> Any:
    """Decode msgpack bytes produced by `packb` (or any msgpack). PayloadError on bad input."""

def encode_task(
    name: str, args: Sequence[Any], kwargs: Mapping[str, Any], retry: int = 0, meta: Mapping[str, Any] | None = None
) -> bytes:
    """Encode a task payload: msgpack map {name, args, kwargs, retry[, meta]}; no meta entry when `meta` is
    None or empty (a plain task's bytes are WakaQ's)."""

def encode_task_json(name: str, args: Sequence[Any], kwargs: Mapping[str, Any], retry: int | None = None) -> bytes:
    """Encode a task payload as WakaQ 4.0.4 writes it: JSON {name, args, kwargs[, retry]} (`retry` None: no such key,
    as WakaQ's eta tasks and broadcasts). TypeError naming the value's path for what WakaQ's JSON cannot carry."""

def decode_task(data: bytes) -> tuple[str, list[Any], dict[str, Any], int]:
    """Decode a task payload (msgpack, or WakaQ's JSON when it starts with `{`). PayloadError on bad input."""

def decode_task_meta(data: bytes) -> tuple[str, list[Any], dict[str, Any], int, dict[str, Any] | None]:
    """`decode_task` plus the payload's meta map (None when it has none)."""

def retried_task(payload: bytes, retry: int, meta: Mapping[str, Any] | None = None) -> bytes:
    """A retry's payload: `payload`'s name, args and kwargs bytes as they were sent, with a new `retry` and `meta`
    (None or empty: none). WakaQ's JSON payloads come back as msgpack. PayloadError for bytes that are no task."""

# ---- broker -----------------------------------------------------------------------------------------------

def key_layout(prefix: str, cluster: bool = False) -> dict[str, str]:
    """Key name templates, e.g. {'queue': 'wakaq:{queue}', ...}; used to check python/wakaq/keys.py agrees."""

def script_text(name: str) -> str | None:
    """A Lua script's text as Redis gets it, by name ("finish"); None for an unknown name. For tests and tools."""

@final
class Broker:
    """Producer side connection (thread-safe, GIL released during I/O)."""

    def __new__(
        cls,
        url: str,
        prefix: str = ...,
        socket_timeout: float | None = None,
        connect_timeout: float | None = None,
        *,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_cert_reqs: str | None = None,
        payload_format: str = "msgpack",
    ) -> Broker:
        """`ssl_*` (rediss:// only): CA PEM file to trust instead of the system's, client certificate and key
        (mutual TLS; the key may sit in the certificate file), and "required" (default) or "none" (no
        verification). BrokerError for unreadable files or options without a rediss:// url. `payload_format`:
        "msgpack" or "json" (WakaQ's payloads, no meta: TypeError for a push that has some), for every push."""
    @property
    def prefix(self) -> str: ...
    @property
    def payload_format(self) -> str: ...
    def push(
        self,
        queue: str,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        retry: int = 0,
        meta: Mapping[str, Any] | None = None,
        *,
        replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> None:
        """Encode a task and push it at the end of `queue` (one round trip). `replicas > 0`: WAIT for that many
        replicas (same round trip), `DurabilityError` when fewer confirm within `replica_timeout` seconds."""
    def push_raw(self, queue: str, payload: bytes) -> None:
        """Push an already encoded payload (requeue of a failed task)."""
    def push_eta(
        self,
        queue: str,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        due: float,
        meta: Mapping[str, Any] | None = None,
        *,
        replicas: int = 0,
        replica_timeout: float = 1.0,
        relative: bool = False,
    ) -> None:
        """Add an eta task due at `due` (unix seconds), or `due` seconds from now on Redis's clock when `relative`;
        equal tasks dedupe. `replicas`: as for `push`."""
    def push_many(
        self,
        items: Sequence[
            tuple[str, str, Sequence[Any], Mapping[str, Any]]
            | tuple[str, str, Sequence[Any], Mapping[str, Any], Mapping[str, Any] | None]
        ],
        *,
        replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> int:
        """Push `[(queue, name, args, kwargs), ...]` in one round trip per queue; returns the count. `replicas`:
        as for `push` (one WAIT per queue)."""
    def broadcast(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
        """Hand a broadcast task to every live worker daemon; returns how many received it. JSON mode: PUBLISH on
        WakaQ's channel (the subscribers: WakaQ's daemons and ours)."""
    def push_unique(
        self,
        queue: str,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        meta: Mapping[str, Any],
        lock: str,
        ttl: float,
        *,
        delay: float | None = None,
        due: float | None = None,
    ) -> str | None:
        """Take the uniqueness lock `lock` (for `ttl` seconds from when the task is due) and push the task, in one
        script; `delay`: due that many seconds from now on Redis's clock, `due`: at that unix time. None when
        enqueued, else the id of the task holding the lock."""
    def push_debounced(
        self,
        queue: str,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        meta: Mapping[str, Any],
        key: str,
        window: float,
    ) -> tuple[bool, float]:
        """Debounce a call under `key` (its meta carries `id`): the first call of a window adds it to `queue`'s eta
        set, due `window` seconds from now on Redis's clock; later calls within the window replace the pending one
        (same due time). Returns (replaced a pending call, due unix time)."""
    def cancel_queued(self, key: str, element: bytes, queue: str, reason: str, *, zset: bool = False) -> bool:
        """Remove exactly `element` from `key` (a queue or parked list; `zset`: an eta set), record it failed with
        `reason` and settle its result record and lock, in one script; False when it was gone."""
    def start_workflow(self, id: str, ttl: int, nodes: list[tuple[str, int, bool, str, str, Any, Any]]) -> bool:
        """Start workflow `id` (wakaq.workflow): `nodes` in pre-order as (kind "t"/"c"/"g", parent or -1, flag
        (`.si()` / allow_failure), queue, name, args, kwargs); its keys and steps' records live `ttl` seconds. False
        when `id` exists already."""
    def cancel_workflow(self, id: str, reason: str) -> str:
        """Cancel workflow `id` if it runs; returns the status it had ("" when there is none)."""
    def fire(self, schedule: str, slot: str, ident: str, ttl: int, queue: str, element: bytes) -> bool:
        """Claim fire slot `slot` of schedule `schedule` (for `ttl` seconds) and push `element` onto `queue`, in one
        script; False when another scheduler fired it already."""
    def requeue_failed(self, failed_queue: str, record: bytes, queue: str, payload: bytes) -> bool:
        """Remove failure record `record`, push its task onto `queue` and drop its result record, in one script;
        False when the record was gone."""
    def drop_failed(self, queues: Sequence[str], record: bytes | None = None) -> int:
        """Drop failure record `record` (exact bytes) from the failed list of `queues[0]`, or every record of the
        failed lists of `queues`; returns how many were dropped."""
    def purge(self, queue: str, limited: Sequence[str]) -> tuple[int, int]:
        """Empty `queue`: its list, its parked lists (registered, and those of the `limited` tasks) and its eta set,
        releasing the purged tasks' uniqueness locks and marking their result records "cancelled". Returns
        (pending tasks removed, eta tasks removed)."""
    def pause(self, queue: str) -> bool:
        """Pause `queue` on every daemon (claims skip it; pushes and eta promotion go on); True when it was not
        paused."""
    def resume(self, queue: str) -> bool:
        """Resume a paused `queue` and ring its bell; True when it was paused."""
    def ping(self) -> bool: ...

@final
class Consumer:
    """One forked child's connection to its queues (not shared between processes)."""

    def __new__(cls, settings: Settings) -> Consumer:
        """This child's side of the daemon's queues, as `settings` say (url, prefix, daemon id, queues, timeouts,
        TLS options, rate limits). BrokerError for settings without a url or with a bad one."""
    @property
    def rate_limited(self) -> bool:
        """Some queue or task has a rate limit (claim_limited.lua): an empty claim may set `budget_wait`."""
    @property
    def queue_names(self) -> list[str]:
        """Queue names in claim order; index 0 is this daemon's broadcast list."""
    @property
    def worker(self) -> str:
        """This child's identity in failure records: `<daemon>/<pid>`."""
    @property
    def budget_wait(self) -> float | None:
        """After an empty claim: seconds until pending rate-limited work has budget (0.0: claim again at once), or
        None when nothing pending waits for budget."""
    @property
    def unsettled(self) -> bool:
        """Acks or claims of an unanswered call are parked; the next claim settles them."""
    def claim(self, acks: Sequence[int], max_count: int) -> list[ClaimedTask]:
        """Ack finished seqs and claim up to max_count tasks, in claim order. Tasks whose meta is malformed are
        recorded failed here and never returned."""
    def wait(self, timeout: float) -> bool:
        """Block on the queues' bells (GIL released); True when a token was taken."""
    @property
    def refused(self) -> bool:
        """The last claim was refused: this daemon is not registered (a reaper took it for dead while it was
        stalled); its parent registers it again with its next heartbeat."""
    def done(self, task: ClaimedTask, value: bytes | None = None, acks: Sequence[int] = ...) -> None:
        """`task` succeeded: its in-flight entry goes, its result record says "done" with `value` (packed) and its
        uniqueness lock is released, in one script; also acks `acks`."""
    def fail(
        self,
        task: ClaimedTask,
        reason: str,
        traceback: str,
        acks: Sequence[int] = ...,
        *,
        error: tuple[str, str] | None = None,
        status: str = "failed",
    ) -> None:
        """Record `task` as failed (reason, traceback); its result record gets `status` ("failed" or "cancelled")
        with `error` (type name, message) and its lock is released, in one script; also acks `acks`."""
    def retry(
        self,
        task: ClaimedTask,
        meta: Mapping[str, Any] | None = None,
        acks: Sequence[int] = ...,
        *,
        error: tuple[str, str] | None = None,
    ) -> None:
        """Re-enqueue `task` at the end of its queue as its next attempt: the payload it was claimed with, `retry`
        one more and `meta` in place of its meta (None or empty: none); its result record says "retrying"."""
    def retry_at(
        self,
        task: ClaimedTask,
        delay: float,
        meta: Mapping[str, Any] | None = None,
        acks: Sequence[int] = ...,
        *,
        error: tuple[str, str] | None = None,
    ) -> None:
        """`retry` into its queue's eta set, due `delay` seconds from now on Redis's clock, in the same script that
        removes its in-flight entry; ValueError for a non-finite `delay`."""
    def start(self, task: ClaimedTask) -> bool:
        """`task` starts: its result record says "running" (a round trip only when it stores results)."""
    def progress(self, task: ClaimedTask, value: Any) -> bool:
        """`task` reports its progress (`value`: {done, total, info}) into its own key, only while it is in flight
        here and its result record is not final; False when nothing was written (no id, settled, not held).
        ValueError when `value` packs to more than 64 KiB."""
    def release(self, tasks: Sequence[ClaimedTask]) -> int:
        """Return claimed, not started tasks to the front of their queues (shutdown)."""

@final
class ClaimedTask:
    """One task a child claimed (`Consumer.claim`), its payload held in Rust; settled by passing it back."""

    @property
    def seq(self) -> int:
        """This child's sequence number of the task."""
    @property
    def index(self) -> int:
        """Index of its queue in `Consumer.queue_names` (0: this daemon's broadcasts)."""
    @property
    def queue(self) -> str:
        """Its queue's name ("broadcast" for a broadcast relayed by this daemon's parent)."""
    def head(self) -> tuple[int, int, str]:
        """`(seq, index, queue)` in one call."""
    @property
    def deliveries(self) -> int:
        """Interrupted deliveries before this one (0 on a first delivery)."""
    @property
    def payload(self) -> bytes:
        """The payload's bytes (a copy)."""
    def decode(self) -> tuple[str, list[Any], dict[str, Any], int, dict[str, Any] | None]:
        """Child: `decode_task_meta` of the payload, marking the slot first (`task_handling(seq)`): a child that
        dies from here on has the task's delivery counted. PayloadError for bytes that are not a task."""

def split_element(element: bytes) -> tuple[int, bytes]:
    """(delivery count, payload) of a queue element."""

# ---- supervisor -------------------------------------------------------------------------------------------

@final
class Settings:
    """A worker daemon's settings, validated once and frozen: what the parent (`run_worker`) and each child's
    `Consumer` take. Built from one dict (wakaq/daemon.py `supervisor_config`): concurrency (required),
    max_mem_percent, log_file, log_level, wait_timeout, daemon_id, hostname, heartbeat_interval, heartbeat_timeout,
    shutdown_timeout (None = wait forever), url (None = no Redis), prefix, queues, task_names, limited_tasks,
    queue_rates ((T, tau) in microseconds per queue, (0, 0): none), task_rates ((task name, T, tau)),
    conc_limits ((task name, most running per key)), socket_timeout, connect_timeout, max_tasks_per_worker,
    ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs (as `Broker`'s; the PEM files are read here),
    start_method, spawn_command, spawn_env. ValueError naming the key for an unknown key or a bad value."""

    def __new__(cls, config: Mapping[str, Any]) -> Settings: ...
    @property
    def daemon_id(self) -> str: ...
    @property
    def concurrency(self) -> int: ...
    @property
    def queues(self) -> list[str]: ...
    @property
    def wait_timeout(self) -> float: ...

def run_worker(settings: Settings, child_main: Callable[[int], int]) -> int:
    """Run the worker daemon's parent loop until SIGINT/SIGTERM/SIGQUIT; returns the exit code (0).

    Forks `settings.concurrency` children that each call `child_main(slot)` (its return value, or a SystemExit
    code, is the child's exit status; an exception prints its traceback and exits 1).
    """

def run_spawned_child(
    settings: Settings,
    slot: int,
    slots_fd: int,
    counters_fd: int,
    parent_pid: int,
    child_main: Callable[[int], int],
) -> None:
    """Spawn mode, in the exec'd child (`wakaq._spawned`): map the parent's slot table and counter regions from
    the inherited memory files, then run `child_main(slot)` as a forked child would and leave with `_exit`.
    Raises RuntimeError (never returns otherwise) when the shared memory cannot be mapped or does not fit
    `settings`."""

def task_started(seq: int, soft_timeout: float, hard_timeout: float, cell: int | None = None) -> None:
    """Child: a sync task started (seconds from now, 0 = no timeout); the watchdog reads it from shared memory.
    With `cell` (from `counter_cell`) it is also counted as started. A no-op outside a child forked by
    `run_worker`."""

def task_handling(seq: int) -> None:
    """Child: it works on task `seq` (0: no longer) outside a sync run (decoding, starting an async task): a child
    that dies now has the delivery counted. No-op outside a child."""

def task_finished(done: bool = True) -> None:
    """Child: the sync task finished (also counts it in the daemon's tasks_done, and as done when `done`, with
    its run time, if it was started with a cell). No-op outside a child."""

def counter_cell(queue: str, task: str | None = None) -> int:
    """Child: the shared-memory counter cell of task `task` (None: undecodable) from `queue`; 0 outside a child."""

def count_task(cell: int, event: str, seconds: float | None = None) -> None:
    """Child: count "started", "retried", "exception", "undecodable" or "cancelled" for `cell`; with `seconds`, the
    end of an async task and its run time (counted as done for "done"). No-op outside a child; ValueError for
    another event."""

def take_cancels() -> list[int]:
    """Child (SIGUSR2 handler): seqs an admin asked this child to cancel, taken from its slot's mailbox; [] outside
    a child."""

def async_deadline(seq: int, hard_timeout_at: float, cell: int | None = None) -> None:
    """Child: the earliest hard deadline (`time.monotonic()` seconds) of its async tasks, 0 for none.
    No-op outside a child."""
