"""Public exceptions. Rust raises these too (looked up by name), so keep the names stable."""


class WakaQError(Exception):
    """Base of every wakaq error; also raised for invalid configuration."""


class SoftTimeout(WakaQError):
    """Raised inside a running sync task when it passes its soft timeout."""


class TaskCancelled(BaseException):
    """Raised inside a running task an admin cancelled with `terminate=True` (`app.cancel`, `wakaq-cancel`); the
    task is recorded failed with reason "cancelled by admin" and not retried.

    NOTE: a BaseException, like KeyboardInterrupt and asyncio's CancelledError: a task's `except Exception` must not
    swallow the admin's cancel (it would then finish as done)."""


class PayloadError(WakaQError, ValueError):
    """Bytes that are not a valid task payload (garbage, truncated, wrong shape, too deep)."""


class BrokerError(WakaQError, ConnectionError):
    """Redis is unreachable, timed out, or refused a command."""


class DurabilityError(BrokerError):
    """Durable enqueue: fewer replicas than asked confirmed the push (`WAIT`) within the timeout.

    The push did reach the master, so the task may still run: sending it again may run it twice."""

    def __init__(self, message: str, confirmed: int = 0, wanted: int = 1, timeout: float = 0.0) -> None:
        super().__init__(message)
        #: replicas that confirmed, replicas asked for, seconds waited
        self.confirmed, self.wanted, self.timeout = confirmed, wanted, timeout

    def __str__(self) -> str:
        return str(self.args[0])


class AppImportError(WakaQError):
    """`--app` does not name an importable WakaQ instance (command line tools)."""


class TaskFailed(WakaQError):
    """`TaskHandle.result()` of a task that failed: the name of the exception it raised and its message (the
    exception itself is never pickled across processes). `error_type` is "SoftTimeout" for a soft timeout with no
    retries left, "cancelled" tasks carry what the canceller wrote."""

    def __init__(self, task_id: str, error_type: str, message: str, status: str = "failed") -> None:
        super().__init__(
            f"task {task_id} {status}: {error_type}: {message}" if message else f"task {task_id} {status}: {error_type}"
        )
        #: the task's id, the exception's type name, its message, the final status ("failed" or "cancelled")
        self.task_id, self.error_type, self.message, self.status = task_id, error_type, message, status

    def __str__(self) -> str:
        return str(self.args[0])
