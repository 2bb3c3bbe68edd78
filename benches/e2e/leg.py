"""One measurement: `python leg.py SYSTEM WORKLOAD OPTIONS_JSON`, run by `run.py` inside SYSTEM's interpreter.

Prints one JSON line last: {"status": "ok", "result": {...}} or {"status": "timeout"|"error", "message": ...}.
BENCH_URL, BENCH_PROGRESS_URL (bookkeeping), BENCH_CONCURRENCY and BENCH_ASYNC_CONCURRENCY come from the
environment (the worker inherits them).
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import redis  # noqa: E402


def main(argv: list[str]) -> int:
    system_name, workload, raw = argv
    try:
        module = importlib.import_module(f"systems.{system_name}")
        system = module.Adapter()
        if workload == "version":
            report({"status": "ok", "result": {"version": system.version()}})
            return 0
        opts = common.Options(**json.loads(raw))
        if not opts.logdir or opts.logdir == ".":
            opts.logdir = tempfile.mkdtemp(prefix="wakaq-bench-")
        Path(opts.logdir).mkdir(parents=True, exist_ok=True)
        redis.Redis.from_url(opts.url).flushdb()
        if opts.progress_url:
            redis.Redis.from_url(opts.progress_url).flushdb()
        if workload in ("floor-bulk", "floor-io", "floor-noop"):
            import floors  # wakaq's venv only: it imports wakaq._wakaq

            result = floors.WORKLOADS[workload](system, opts)
        else:
            result = common.WORKLOADS[workload](system, opts)
    except common.LegTimeout as e:
        report({"status": "timeout", "message": str(e)})
    except common.TasksLost as e:
        report({"status": "lost", "message": str(e), "result": e.tally})
    except NotImplementedError as e:
        report({"status": "n/a", "message": str(e)})
    except Exception as e:
        traceback.print_exc()
        report({"status": "error", "message": f"{type(e).__name__}: {e}"[:2000]})
    else:
        report({"status": "ok", "result": result})
    return 0


def report(outcome: dict[str, object]) -> None:
    sys.stdout.flush()
    print("\n" + json.dumps(outcome), flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
