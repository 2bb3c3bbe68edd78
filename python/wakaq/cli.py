"""Command line tools: `wakaq-worker`, `wakaq-scheduler`, `wakaq-info`, `wakaq-purge`, `wakaq-failed`,
`wakaq-cancel`, `wakaq-pause`, `wakaq-resume`, `wakaq-web`.

Also `python -m wakaq <command> ...`. Each entry point returns its exit code (see `constants.py`): errors are one
line on stderr, `<prog>: error: <what>`, never a traceback: 2 for bad arguments or an --app that cannot be
imported, 3 when Redis is unreachable or refuses us (authentication, TLS), 1 for other failures.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from wakaq import __version__
from wakaq.config import redact_url
from wakaq.connection import describe_redis_error, is_config_failure
from wakaq.constants import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, START_METHODS
from wakaq.exceptions import AppImportError, BrokerError, WakaQError

if TYPE_CHECKING:
    from wakaq.app import WakaQ

Command = Callable[["WakaQ", argparse.Namespace], int | None]

APP_HELP = "import path of the WakaQ instance: package.module.attribute or package.module:attribute"


# ---- importing the app ------------------------------------------------------------------------------------------


def import_app(path: str) -> WakaQ:
    """The WakaQ instance at `pkg.mod.attr` or `pkg.mod:attr`; AppImportError with one line otherwise."""
    from wakaq.app import WakaQ

    module_name, attribute = _split_app_path(path)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as WakaQ: `--app yourapp.wakaq` from the project directory
    obj: Any = _import_module(path, module_name)
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise AppImportError(f"cannot load app {path!r}: {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, WakaQ):
        raise AppImportError(f"--app {path!r} is a {type(obj).__name__}, not a WakaQ instance")
    return obj


def _split_app_path(path: str) -> tuple[str, str]:
    module_name, sep, attribute = path.partition(":") if ":" in path else path.rpartition(".")
    if not sep or not module_name or not attribute:
        raise AppImportError(f"invalid --app {path!r}: expected package.module.attribute or package.module:attribute")
    return module_name, attribute


def _import_module(path: str, module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise AppImportError(f"cannot load app {path!r}: no module named {e.name!r}") from None
        raise AppImportError(f"cannot load app {path!r}: importing {module_name!r} failed: {e}") from None
    except Exception as e:  # the user's module raised while importing (syntax error, config error, ...)
        what = f"{type(e).__name__}: {e}".strip().splitlines()[0]
        raise AppImportError(f"cannot load app {path!r}: importing {module_name!r} failed: {what}") from None


# ---- running a command ------------------------------------------------------------------------------------------


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--app", required=True, help=APP_HELP)
    return parser


def _run(parser: argparse.ArgumentParser, command: Command, argv: Sequence[str] | None) -> int:
    """Parse, import the app, run; map every expected failure to one line on stderr and an exit code."""
    args = parser.parse_args(argv)
    _ctrl_c_interrupts()
    app: WakaQ | None = None
    try:
        app = import_app(args.app)
        return command(app, args) or EXIT_OK
    except AppImportError as e:
        return _error(parser.prog, str(e), EXIT_USAGE)
    except (BrokerError, ConnectionError) as e:
        return _unreachable(parser.prog, app, e)
    except WakaQError as e:
        return _error(parser.prog, _one_line(e), EXIT_USAGE)
    except Exception as e:
        # NOTE: redis-py is imported only by the commands that use it (the worker does not need it), so its
        # errors are recognised through sys.modules instead of a module-level import.
        redis = sys.modules.get("redis")
        if redis is None or not isinstance(e, redis.RedisError):
            raise
        if isinstance(e, redis.ConnectionError | redis.TimeoutError):
            return _unreachable(parser.prog, app, e)
        return _error(parser.prog, f"Redis error: {_one_line(e)}", EXIT_FAILURE)


def _ctrl_c_interrupts() -> None:
    """Ctrl-C raises KeyboardInterrupt in every command, whatever SIGINT disposition we inherited.

    WARN: Python installs its SIGINT handler only when SIGINT was not ignored at start, and a process started with
    SIGINT ignored (`make test &`, `nohup`, some CI runners) passes that on: `wakaq-info --watch` and `wakaq-web`
    would then ignore Ctrl-C. The worker and the scheduler install their own handlers later, over this one.
    """
    if threading.current_thread() is threading.main_thread():  # NOTE: signal.signal works only there
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _unreachable(prog: str, app: WakaQ | None, e: BaseException) -> int:
    """Authentication and TLS failures say so first; other connection failures say where Redis was expected."""
    where = redact_url(app.url) if app is not None else "?"
    what = describe_redis_error(e, app.url if app is not None else None)
    if is_config_failure(what):
        return _error(prog, f"{what} (at {where})", EXIT_UNAVAILABLE)
    detail = what.split(": ", 1)[1] if not isinstance(e, BrokerError) and ": " in what else _one_line(e)
    return _error(prog, f"cannot reach Redis at {where}: {detail}", EXIT_UNAVAILABLE)


def _error(prog: str, message: str, code: int) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _print(value: Any) -> None:
    from wakaq.admin import to_json

    print(to_json(value))


# ---- commands ---------------------------------------------------------------------------------------------------


def worker(argv: Sequence[str] | None = None) -> int:
    """wakaq-worker: run the worker daemon (a parent and `concurrency` forked children)."""
    parser = _parser("wakaq-worker", "Run worker processes for the queues of your app.")
    parser.add_argument(
        "--start-method",
        choices=START_METHODS,
        help="fork children (default, or the app's start_method) or spawn fresh interpreters that import the app",
    )
    return _run(parser, _worker, argv)


def _worker(app: WakaQ, args: argparse.Namespace) -> int:
    try:
        from wakaq.daemon import run_worker
    except ImportError as e:
        raise AppImportError(f"the worker daemon is not available: {e}") from None
    return run_worker(app, start_method=args.start_method, app_path=args.app)


def scheduler(argv: Sequence[str] | None = None) -> int:
    """wakaq-scheduler: enqueue the app's CronTasks on schedule."""
    parser = _parser("wakaq-scheduler", "Run the scheduler that enqueues your app's periodic tasks.")
    parser.add_argument("--list", action="store_true", help="print each schedule's next 3 fire times (UTC) and exit")
    return _run(parser, _scheduler, argv)


def _scheduler(app: WakaQ, args: argparse.Namespace) -> int | None:
    try:
        from wakaq.scheduler import run_scheduler
    except ImportError as e:
        raise AppImportError(f"the scheduler is not available: {e}") from None
    app.validate_schedules()
    result: int | None = run_scheduler(app, list_only=args.list)
    return result


def info(argv: Sequence[str] | None = None) -> int:
    """wakaq-info: print queues (pending, eta, in-flight, failed counts) and live workers as JSON (WakaQ's shape),
    or with --watch a live terminal view."""
    parser = _parser("wakaq-info", "Print queue counts and live worker daemons as JSON.")
    parser.add_argument("--watch", action="store_true", help="a terminal view redrawn every second (Ctrl-C quits)")
    parser.add_argument("--interval", type=float, default=1.0, help="--watch: seconds between redraws")
    return _run(parser, _info, argv)


def _info(app: WakaQ, args: argparse.Namespace) -> int | None:
    from wakaq.admin import connect, inspect

    with connect(app) as r:
        if args.watch:
            from wakaq.watch import watch

            return watch(app, r, max(0.1, args.interval))
        _print(inspect(app, r))
    return None


def purge(argv: Sequence[str] | None = None) -> int:
    """wakaq-purge: empty a queue's pending tasks and eta tasks."""
    parser = _parser("wakaq-purge", "Remove every pending and eta task of a queue.")
    parser.add_argument("--queue", required=True, help="name of the queue to empty")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON instead of WakaQ's line")
    return _run(parser, _purge, argv)


def _purge(app: WakaQ, args: argparse.Namespace) -> None:
    from wakaq.admin import connect
    from wakaq.admin import purge as purge_queue

    with connect(app) as r:
        purged = purge_queue(app, r, args.queue)
    if args.json:
        _print(purged)
    else:
        # NOTE: WakaQ's exact line (pending and eta tasks together): scripts written for WakaQ may parse it
        print(f"Purged {purged['purged_tasks'] + purged['purged_eta_tasks']} tasks from {purged['queue']}")


def failed(argv: Sequence[str] | None = None) -> int:
    """wakaq-failed: list, re-enqueue or drop failed tasks."""
    parser = _parser("wakaq-failed", "List, re-enqueue or drop the failed tasks of one queue or all queues.")
    parser.add_argument("--queue", help="only this queue (default: every queue)")
    parser.add_argument("--limit", type=int, default=100, help="list: at most this many records per queue")
    parser.add_argument("action", choices=["list", "requeue", "drop"])
    return _run(parser, _failed, argv)


def _failed(app: WakaQ, args: argparse.Namespace) -> None:
    from wakaq import admin

    with admin.connect(app) as r:
        queues = admin.failed_queues(app, r, args.queue)
        if args.action == "list":
            _print(admin.list_failed(app, r, queues, max(1, args.limit)))
        elif args.action == "requeue":
            _print(admin.requeue_failed(app, r, queues))
        else:
            _print(admin.drop_failed(app, r, queues))


def cancel(argv: Sequence[str] | None = None) -> int:
    """wakaq-cancel: list tasks with their ids, cancel one by id, or every pending task of a name."""
    parser = _parser(
        "wakaq-cancel",
        "Cancel a pending or eta task by id (`list` prints ids), or with --task NAME every pending and eta task of "
        "that name. A running task is interrupted only with --terminate.",
    )
    parser.add_argument("target", nargs="?", help="a task id, or `list`")
    parser.add_argument("--task", help="list: only tasks of this name; without an id: cancel all pending of it")
    parser.add_argument("--queue", help="only this queue (list, --task)")
    parser.add_argument("--limit", type=int, default=100, help="list: print at most this many tasks")
    parser.add_argument("--terminate", action="store_true", help="interrupt the task if it is running")
    return _run(parser, _cancel, argv)


def _cancel(app: WakaQ, args: argparse.Namespace) -> int | None:
    from wakaq import admin, cancel

    queue = app.get_queue(args.queue, "--queue").name if args.queue is not None else None
    with admin.connect(app) as r:
        if args.target == "list":
            _print(cancel.list_tasks(app, r, queue, args.task, max(1, args.limit)))
        elif args.target is not None:
            outcome = cancel.cancel(app, args.target, args.terminate, r)
            _print({"id": args.target, "result": outcome.value})
            return EXIT_FAILURE if outcome is cancel.Outcome.NOT_FOUND else None
        elif args.task is not None:
            _print({"task": args.task, "cancelled": cancel.cancel_task(app, args.task, queue, r)})
        else:
            raise WakaQError("give a task id, `list`, or --task NAME")
    return None


def pause(argv: Sequence[str] | None = None) -> int:
    """wakaq-pause: stop every daemon claiming from a queue (it keeps accepting tasks; running ones finish)."""
    parser = _pause_parser("wakaq-pause", "Pause a queue: no worker daemon claims from it until wakaq-resume.")
    parser.set_defaults(pausing=True)
    return _run(parser, _pause_resume, argv)


def resume(argv: Sequence[str] | None = None) -> int:
    """wakaq-resume: let the daemons claim from a paused queue again."""
    parser = _pause_parser("wakaq-resume", "Resume a queue paused with wakaq-pause.")
    parser.set_defaults(pausing=False)
    return _run(parser, _pause_resume, argv)


def _pause_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = _parser(prog, description)
    parser.add_argument("queue", help="name of the queue")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON instead of a line")
    return parser


def _pause_resume(app: WakaQ, args: argparse.Namespace) -> None:
    name = app.get_queue(args.queue, "queue").name
    changed = app.pause(name) if args.pausing else app.resume(name)
    if args.json:
        _print({"queue": name, "paused": args.pausing, "changed": changed})
    elif changed:
        print(f"{'Paused' if args.pausing else 'Resumed'} {name}")
    else:
        print(f"{name} was already {'paused' if args.pausing else 'running'}")


def web(argv: Sequence[str] | None = None) -> int:
    """wakaq-web: serve the dashboard and /metrics (needs `pip install 'wakaq-rs[web]'`)."""
    from wakaq.web.server import add_arguments

    parser = _parser("wakaq-web", "Serve the web dashboard (queues, daemons, failed and eta tasks) and /metrics.")
    add_arguments(parser)
    return _run(parser, _web, argv)


def _web(app: WakaQ, args: argparse.Namespace) -> int:
    from wakaq.web.server import run_web

    return run_web(app, args)


COMMANDS: dict[str, Callable[[Sequence[str] | None], int]] = {
    "worker": worker,
    "scheduler": scheduler,
    "info": info,
    "purge": purge,
    "failed": failed,
    "cancel": cancel,
    "pause": pause,
    "resume": resume,
    "web": web,
}


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m wakaq <command> [options]`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        names = "|".join(COMMANDS)
        return _error("wakaq", f"usage: python -m wakaq {{{names}}} --app package.module.attribute ...", EXIT_USAGE)
    return COMMANDS[argv[0]](argv[1:])
