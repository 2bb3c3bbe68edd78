"""Where wakaq's worker start-up goes (`make bench-startup`): input for the 0.14 s start-up target.

Measures, each as the median of `--runs` fresh processes of wakaq's `.venv` interpreter:

- the interpreter alone (`python -c pass`), then the imports the worker does (`wakaq.cli`, `wakaq.worker`), the
  benchmark app's module, and redis-py for reference;
- worker start to first task done (the e2e benchmark's start-up figure): `wakaq-worker` on one queued task;
- the import tree of a real `wakaq-worker` (`PYTHONPROFILEIMPORTTIME`), largest cumulative imports first;

Prints Markdown; `--out FILE` writes it too. Figures on a busy machine are noisy: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
E2E = HERE / "e2e"
sys.path[:0] = [str(ROOT), str(E2E)]

from tests.redis_server import RedisServer  # noqa: E402

PYTHON = Path(os.environ.get("WAKAQ_BENCH_PYTHON", ROOT / ".venv" / "bin" / "python"))
WORKER = PYTHON.parent / "wakaq-worker"
APP = "systems.wakaq_rs.app"


def env_for(url: str, progress: str) -> dict[str, str]:
    return dict(os.environ, BENCH_URL=url, BENCH_PROGRESS_URL=progress, BENCH_CONCURRENCY="2", PYTHONPATH=str(E2E))


def wall(command: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, cwd=E2E, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def first_task(env: dict[str, str], url: str, progress: str, prefix: list[str] | None = None) -> float:
    """Seconds from starting `wakaq-worker` to its first task finishing (one task queued before)."""
    import redis

    r, pr = redis.Redis.from_url(url), redis.Redis.from_url(progress)
    r.flushdb()
    pr.flushdb()
    code = "from systems.wakaq_rs import noop; noop.delay_many([((0,), {})])"
    subprocess.run([str(PYTHON), "-c", code], env=env, check=True, cwd=E2E)
    started = time.time()
    worker = subprocess.Popen([*(prefix or []), str(WORKER), "--app", APP], env=env, cwd=E2E, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not pr.hlen("bench:first"):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("the worker did not run its task within 30 s")
            time.sleep(0.002)
        return min(float(v) for v in pr.hvals("bench:first")) - started
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def import_tree(env: dict[str, str], limit: int) -> list[tuple[float, str]]:
    """The worker parent's imports (children are forked: they import nothing more), cumulative ms."""
    proc = subprocess.run(
        [str(PYTHON), "-X", "importtime", "-c", f"import wakaq.cli, wakaq.worker; import {APP.rsplit('.', 1)[0]}"],
        env=env,
        cwd=E2E,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        if depth <= 3:
            rows.append((int(cumulative) / 1000, "  " * (depth - 1) + name.strip()))
    return sorted(rows, reverse=True)[:limit]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    server, bookkeeping = RedisServer().start(), RedisServer().start()
    try:
        env = env_for(server.url, bookkeeping.url)
        load = os.getloadavg()
        phases = [
            ("interpreter alone (`python -c pass`)", [str(PYTHON), "-c", "pass"]),
            ("import wakaq.cli, wakaq.worker", [str(PYTHON), "-c", "import wakaq.cli, wakaq.worker"]),
            ("import the benchmark app (wakaq + asyncio + progress)", [str(PYTHON), "-c", "import systems.wakaq_rs"]),
            ("import redis (redis-py, for reference)", [str(PYTHON), "-c", "import redis"]),
            ("wakaq-worker --help (the CLI path, no app)", [str(WORKER), "--help"]),
        ]
        lines = [
            "# wakaq worker start-up profile",
            "",
            f"`python benches/startup_profile.py {' '.join(sys.argv[1:])}`; load average {load[0]:.2f} {load[1]:.2f}"
            f" {load[2]:.2f} (2 worker children, one queued task; medians of {args.runs} runs).",
            "",
            "| phase | ms |",
            "|---|---|",
        ]
        for label, command in phases:
            lines.append(f"| {label} | {1000 * wall(command, env, args.runs):.1f} |")
        starts = [first_task(env, server.url, bookkeeping.url) for _ in range(args.runs)]
        lines.append(
            f"| **worker start to first task done** | **{1000 * statistics.median(starts):.1f}**"
            f" (min {1000 * min(starts):.1f}, max {1000 * max(starts):.1f}) |"
        )
        # the same with redis-py imported at interpreter start (a sitecustomize), as the benchmark's counter did
        # before it had its own RESP client: what that import cost wakaq's measured start-up
        site = Path(tempfile.mkdtemp(prefix="wakaq-startup-"))
        (site / "sitecustomize.py").write_text("import redis\n")
        with_redis = dict(env, PYTHONPATH=os.pathsep.join([str(site), env["PYTHONPATH"]]))
        old = [first_task(with_redis, server.url, bookkeeping.url) for _ in range(args.runs)]
        lines.append(
            f"| the same with redis-py imported first (the counter before `progress.py`) |"
            f" {1000 * statistics.median(old):.1f} (min {1000 * min(old):.1f}, max {1000 * max(old):.1f}) |"
        )
        lines += ["", "Largest imports of the worker parent (cumulative ms, `-X importtime`):", "", "```"]
        lines += [f"{ms:7.1f}  {name}" for ms, name in import_tree(env, 25)]
        lines.append("```")
    finally:
        server.cleanup()
        bookkeeping.cleanup()
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
