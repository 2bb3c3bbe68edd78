"""Payload formats: what an app's producers write (`WakaQ(payload_format=...)`). Workers read both, whatever it says.

- "msgpack" (the default): wakaq's payloads, every feature.
- "json": WakaQ 4.0.4's JSON payloads, the bytes its own producers write (Rust: `codec/json_encode.rs`), so WakaQ's
  workers can run what this app sends while a fleet moves (README "Moving from WakaQ"). Every producer path
  follows it: `.delay()`, `delay_with_options`, `delay_many`, eta tasks, `.broadcast()` (then WakaQ's PUBLISH), the
  async `adelay*` and the scheduler's cron pushes.

JSON has no room for the payload's meta, so the features that need it are refused in JSON mode, naming the feature,
as early as they are known: the app's `store_results` and `retry_on` when the app is made, a task's
`store_results`, `unique_for` and `retry_on` when it is registered, `delay_with_options(unique_key=...)` when called.

WARN: a task that raises `wakaq.Retry` on one of our workers is retried with meta (its errors), so as msgpack,
which WakaQ's workers cannot read: use it once no WakaQ worker is left (README "Moving from WakaQ").
"""

from __future__ import annotations

from typing import Any

from wakaq.exceptions import WakaQError

MSGPACK = "msgpack"
JSON = "json"
PAYLOAD_FORMATS = (MSGPACK, JSON)
DEFAULT_PAYLOAD_FORMAT = MSGPACK


def to_payload_format(value: object) -> str:
    if value not in PAYLOAD_FORMATS:
        raise WakaQError(f'payload_format must be "msgpack" or "json", got {value!r}')
    return str(value)


def needs_msgpack(feature: str) -> WakaQError:
    """The error for `feature` asked for in JSON mode."""
    return WakaQError(
        f'{feature} needs payload_format="msgpack": WakaQ\'s JSON payloads (payload_format="json") carry no meta, '
        "so they can hold plain tasks only"
    )


def check_app(app: Any) -> None:
    """The app's own settings that need meta (its tasks' are checked as they are registered, `check_task`)."""
    if app.payload_format != JSON:
        return
    if app.store_results:
        raise needs_msgpack("store_results=True")
    if app.retry_options.retry_on:
        raise needs_msgpack("retry_on")


def check_task(app: Any, task: Any) -> None:
    """A task registered in JSON mode: no results, no uniqueness, no retries that keep their errors."""
    if app.payload_format != JSON:
        return
    where = f" (task {task.name!r})"
    if task.result_ttl is not None:
        raise needs_msgpack(f"store_results{where}")
    if task.unique_for is not None:
        raise needs_msgpack(f"unique_for{where}")
    if getattr(task, "concurrency", None) is not None:
        raise needs_msgpack(f"concurrency_key{where}")
    if task.retry_options is not None and task.retry_options.retry_on:
        raise needs_msgpack(f"retry_on{where}")


def check_unique_key(app: Any, unique_key: str | None) -> None:
    """`delay_with_options(unique_key=...)`: a unique task, whose lock key travels in meta."""
    if unique_key is not None and app.payload_format == JSON:
        raise needs_msgpack("unique_key")


def encode_element(app: Any, name: str, args: Any, kwargs: Any) -> bytes:
    """A task's queue element in the app's format (the scheduler's cron elements): what `.delay()` would push."""
    from wakaq._wakaq import encode_task, encode_task_json

    if app.payload_format == JSON:
        return encode_task_json(name, args, kwargs, 0)
    return encode_task(name, args, kwargs, 0)
