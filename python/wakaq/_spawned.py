"""A spawn-mode worker child: `python -m wakaq._spawned SLOT SLOTS_FD COUNTERS_FD PARENT_PID`, exec'd by the
supervisor (rust/src/supervisor/spawn.rs) with `WAKAQ_SPAWN` (daemon.spawn_options) in its environment.

It imports the app afresh (nothing inherited from the parent but the log pipe and the two shared-memory fds),
then runs the same child loop as a forked child; the supervisor treats both alike.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from wakaq.exceptions import WakaQError


def main(argv: list[str]) -> int:
    slot, slots_fd, counters_fd, parent_pid = (int(a) for a in argv)
    spawn = json.loads(os.environ.pop("WAKAQ_SPAWN"))
    # NOTE: the parent's import path, so `--app` resolves here as it did there (cwd, the console script's dir).
    sys.path[:] = spawn["sys_path"]

    from wakaq import _wakaq
    from wakaq.cli import import_app
    from wakaq.worker import child_main

    app = import_app(spawn["app"])
    # NOTE: the parent's config, not one recomputed from this import: the counter layout (queues, task names)
    # must be the one the parent sized the shared memory for.
    settings = _wakaq.Settings(spawn["config"])
    _wakaq.run_spawned_child(settings, slot, slots_fd, counters_fd, parent_pid, child_main(app, settings))
    return 1  # not reached: run_spawned_child ends in _exit or raises


if __name__ == "__main__":
    # NOTE: whatever fails here reaches the worker's log through the pipe; the parent counts the early exit
    # towards its crash-loop backoff.
    try:
        code = main(sys.argv[1:])
    except WakaQError as e:
        print(f"wakaq spawned child cannot start: {e}", file=sys.stderr, flush=True)
        code = 1
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        code = 1
    os._exit(code)
