"""End-to-end benchmark: wakaq vs WakaQ 3.0.7, Celery, Dramatiq, Huey, RQ and arq, with the physical floors.

Creates a venv per foreign system under `.bench-venvs/` (a stamp file records what was installed), starts a
private redis-server for the queues (and a second one for the benchmark's own bookkeeping, so the first one's
INFO counters are the systems' own cost), then runs every workload for every system, interleaved in rounds (the
system order rotates each round) so machine drift hits all alike. Each measurement is `leg.py` in the system's own
interpreter, with a deadline; a leg that overruns or fails is reported as "timeout"/"error" and its process group
is killed.

Prints a table (median, min-max, ratios), writes `benches/RESULTS.md` and `benches/throughput.png` (a `--quick`
run writes them under `.bench-venvs/quick/` instead, labelled as a shortened run).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from benches.e2e import readme_table  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

VENVS = ROOT / ".bench-venvs"


@dataclass(frozen=True)
class SystemSpec:
    key: str  # unique name of the row
    label: str
    requirements: tuple[str, ...]  # empty: the repo's own .venv (built by `make build-release`)
    module: str = ""  # module in systems/ (default: key)
    venv: str = ""  # directory under .bench-venvs/ (default: key); systems sharing a package share it
    env: tuple[tuple[str, str], ...] = ()  # environment of its legs and workers (a configuration of the module)

    @property
    def system_module(self) -> str:
        return self.module or self.key


DRAMATIQ = ("dramatiq[redis]==2.2.1", "redis>=4.5,<8", "hiredis")
RQ = ("rq==2.12.0", "hiredis")
SYSTEMS = [
    SystemSpec("wakaq_rs", "wakaq", ()),
    SystemSpec("wakaq_py", "WakaQ", ("wakaq==3.0.7", "redis>=4.5,<9", "hiredis")),
    SystemSpec("celery_app", "Celery", ("celery[redis]==5.7.0", "hiredis")),
    SystemSpec("dramatiq_t1", "Dramatiq p2 t1", DRAMATIQ, "dramatiq_app", "dramatiq_app", (("BENCH_THREADS", "1"),)),
    SystemSpec("dramatiq_t8", "Dramatiq p2 t8", DRAMATIQ, "dramatiq_app", "dramatiq_app", (("BENCH_THREADS", "8"),)),
    SystemSpec("huey_app", "Huey", ("huey==3.5.4", "redis>=4.5,<8", "hiredis")),
    SystemSpec(
        "rq_fork", "RQ fork", RQ, "rq_app", "rq_app", (("BENCH_RQ_WORKER", "fork"), ("BENCH_PROGRESS_SYNC", "1"))
    ),
    SystemSpec("rq_simple", "RQ simple", RQ, "rq_app", "rq_app", (("BENCH_RQ_WORKER", "simple"),)),
    SystemSpec("arq_app", "arq", ("arq==0.28.0", "hiredis")),
]
QUICK = {
    "n": 2_000,
    "rounds": 1,
    "async_n": 2_000,
    "eta_n": 10_000,
    "celery_eta_n": 2_000,
    "latency_n": 100,
    "idle_seconds": 3.0,
    "timeout": 120.0,
}
#: tasks per drain for systems far slower than the rest, so that a leg fits its deadline (noted in the report)
MAX_N = {"rq_fork": 2_000}
FLOORS = ["floor-bulk", "floor-io", "floor-noop"]  # wakaq's venv only; floor-push runs in every system's
WORKLOADS = [
    "floor",
    "floor-push",
    *FLOORS,
    "enqueue",
    "enqueue-bulk",
    "drain-noop",
    "drain-io",
    "latency",
    "async",
    "eta",
    "idle",
]
ONLY = {  # no bulk API / no async tasks elsewhere; the floors run once, in wakaq's venv
    "enqueue-bulk": {"wakaq_rs", "rq_fork"},
    "async": {"wakaq_rs", "wakaq_py", "arq_app"},
    **{f: {"wakaq_rs"} for f in FLOORS},
}
#: each wakaq row's floor: (workload, key) of the metric -> (workload, key) of its floor
FLOOR_OF = {
    ("enqueue", "rate"): ("floor-push", "rate"),
    ("enqueue-bulk", "rate"): ("floor-bulk", "bulk_rate"),
    ("drain-noop", "rate"): ("floor-noop", "rate"),
    ("drain-noop", "steady_rate"): ("floor-noop", "rate"),
    ("drain-io", "rate"): ("floor-io", "rate"),
    ("drain-io", "steady_rate"): ("floor-io", "rate"),
    ("drain-noop", "redis_us"): ("floor-noop", "redis_us"),
    ("drain-noop", "redis_cmds"): ("floor-noop", "redis_cmds"),
    ("enqueue-bulk", "redis_us"): ("floor-bulk", "multi_redis_us"),
    ("enqueue", "redis_us"): ("floor-bulk", "single_redis_us"),
}
TALLIED = ["drain-noop", "drain-io", "async", "eta"]
BULK_ETA = {"wakaq_rs", "wakaq_py"}  # the others enqueue eta tasks one by one: --celery-eta-n of them


@dataclass(frozen=True)
class Metric:
    workload: str
    key: str
    label: str
    unit: str
    higher_is_better: bool
    chart: str = ""  # label under its bars in the throughput chart; empty: not charted


METRICS = [
    Metric("floor", "rate", "floor: redis-py INCR, one process", "ops/s", True),
    Metric("floor-push", "rate", "floor: pipelined push (RPUSH + bell, raw RESP), one process", "ops/s", True),
    Metric("floor-bulk", "single_rate", "floor: redis-py RPUSH round trips (pre-encoded)", "ops/s", True),
    Metric("floor-bulk", "pipelined_rate", "floor: pipelined RPUSH (redis-benchmark -P style)", "ops/s", True),
    Metric("floor-bulk", "multi_rate", "floor: one multi-element RPUSH per chunk", "tasks/s", True),
    Metric("floor-noop", "rate", "floor: claim script loop, no task call", "tasks/s", True),
    Metric("floor-io", "rate", "floor: INCR loop in each of the processes", "ops/s", True),
    Metric("enqueue", "rate", "enqueue: single .delay()", "tasks/s", True, chart=".delay()"),
    Metric("enqueue-bulk", "rate", "enqueue: delay_many (chunks)", "tasks/s", True, chart="delay_many()"),
    Metric("drain-noop", "rate", "drain-noop, with start-up", "tasks/s", True, chart="drain-noop\nwith start-up"),
    Metric(
        "drain-noop",
        "steady_rate",
        "drain-noop, first to last task",
        "tasks/s",
        True,
        chart="drain-noop\nfirst to last",
    ),
    Metric("drain-noop", "startup_s", "start-up: worker start to first task", "s", False),
    Metric("drain-io", "rate", "drain-io, with start-up", "tasks/s", True, chart="drain-io\nwith start-up"),
    Metric("drain-io", "steady_rate", "drain-io, first to last task", "tasks/s", True, chart="drain-io\nfirst to last"),
    Metric("latency", "p50_ms", "latency p50 (enqueue to start)", "ms", False),
    Metric("latency", "p90_ms", "latency p90", "ms", False),
    Metric("latency", "p99_ms", "latency p99", "ms", False),
    Metric("async", "seconds", "async: first start to last end", "s", False),
    Metric("async", "x_ideal", "async: time / ideal", "x", False),
    Metric("eta", "rate", "eta: due tasks run, with start-up", "tasks/s", True, chart="eta (due)\nwith start-up"),
    Metric("eta", "seconds", "eta: worker start to all run", "s", False),
    Metric("idle", "cpu_pct", "idle daemon CPU (parent + children)", "% core", False),
    Metric("idle", "redis_cmds_per_s", "idle daemon Redis requests", "cmd/s", False),
    Metric("idle", "redis_cpu_pct", "idle daemon: Redis CPU", "% core", False),
]
#: Redis cost per task: (workload, label); each has redis_us and redis_cmds
COSTS = [
    ("enqueue", "enqueue: single"),
    ("enqueue-bulk", "enqueue: bulk"),
    ("drain-noop", "drain-noop"),
    ("drain-io", "drain-io"),
    ("eta", "eta"),
]


@dataclass
class Outcome:
    status: str
    result: dict[str, Any] = field(default_factory=dict)
    message: str = ""


# ---- environments -------------------------------------------------------------------------------------------


def venv_python(spec: SystemSpec) -> Path:
    if not spec.requirements:
        return Path(os.environ.get("WAKAQ_BENCH_PYTHON", ROOT / ".venv" / "bin" / "python"))
    return VENVS / (spec.venv or spec.key) / "bin" / "python"


def ensure_venv(spec: SystemSpec) -> None:
    """Create or refresh `.bench-venvs/<system>` when its stamp (the requirement list) differs."""
    if not spec.requirements:
        return
    target = VENVS / (spec.venv or spec.key)
    stamp = target / ".bench-stamp"
    wanted = "\n".join(spec.requirements)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    log(f"creating {target.relative_to(ROOT)}: {', '.join(spec.requirements)}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(target)], check=True)
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *spec.requirements], check=True)
    stamp.write_text(wanted)


# ---- legs ---------------------------------------------------------------------------------------------------


def leg_env(url: str, workload: str, args: argparse.Namespace, spec: SystemSpec | None = None) -> dict[str, str]:
    env = dict(
        os.environ,
        BENCH_URL=url,
        BENCH_PROGRESS_URL=getattr(args, "progress_url", ""),
        BENCH_CONCURRENCY=str(args.concurrency),
        BENCH_ASYNC_CONCURRENCY=str(args.async_concurrency if workload == "async" else 0),
        PYTHONPATH=str(HERE),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(spec.env if spec else ())  # the system's configuration (and a scale curve's point) last
    return env


def run_leg(spec: SystemSpec, workload: str, url: str, args: argparse.Namespace, logdir: Path) -> Outcome:
    """One measurement in its own process group; whatever it leaves running is killed afterwards."""
    options = {
        "url": url,
        "n": min(args.n, MAX_N.get(spec.key, args.n)),
        "async_n": args.async_n,
        "async_concurrency": args.async_concurrency,
        "eta_n": args.eta_n if spec.key in BULK_ETA else min(args.eta_n, args.celery_eta_n),
        "latency_n": args.latency_n,
        "idle_seconds": args.idle_seconds,
        "bulk_chunk": args.bulk_chunk,
        "timeout": args.timeout,
        "logdir": str(logdir),
        "progress_url": args.progress_url,
    }
    command = [str(venv_python(spec)), str(HERE / "leg.py"), spec.system_module, workload, json.dumps(options)]
    out_path = logdir / f"{spec.key}-{workload}.out"
    with out_path.open("ab") as out:
        proc = subprocess.Popen(
            command, env=leg_env(url, workload, args, spec), stdout=subprocess.PIPE, stderr=out, start_new_session=True
        )
        try:
            stdout, _ = proc.communicate(timeout=args.timeout + 60)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            proc.communicate()
            return Outcome("timeout", message=f"no answer within {args.timeout + 60:.0f}s")
        finally:
            kill_group(proc.pid)
    return parse_outcome(stdout.decode(errors="replace"), proc.returncode, out_path)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def parse_outcome(stdout: str, returncode: int, out_path: Path) -> Outcome:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = out_path.read_text(errors="replace")[-600:] if out_path.exists() else ""
        return Outcome("error", message=f"exit {returncode}, no result: {tail.strip()}")
    data = json.loads(lines[-1])
    return Outcome(data["status"], data.get("result") or {}, data.get("message", ""))


def flush_redis(url: str) -> None:
    import socket
    from urllib.parse import urlparse

    parts = urlparse(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(b"FLUSHALL\r\n")
        sock.recv(64)


# ---- the run ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    specs = [s for s in SYSTEMS if s.key in args.systems]
    workloads = [w for w in WORKLOADS if w in args.workloads]
    for spec in specs:
        ensure_venv(spec)
    versions = {spec.key: probe_version(spec) for spec in specs}
    available = [s for s in specs if versions[s.key].status == "ok"]
    for spec in specs:
        if spec not in available:
            log(f"{spec.label}: not run: {versions[spec.key].message}")

    server = RedisServer().start()
    bookkeeping = RedisServer().start()
    args.progress_url = bookkeeping.url
    logdir = Path(tempfile.mkdtemp(prefix="wakaq-bench-e2e-"))
    outcomes: dict[tuple[str, str], list[Outcome]] = {}
    started = time.monotonic()
    args.load_before = os.getloadavg()
    try:
        for round_no in range(args.rounds):
            for workload in workloads:
                order = rotate(available, round_no)
                for spec in order:
                    if spec.key not in ONLY.get(workload, {spec.key}):
                        continue
                    flush_redis(server.url)
                    flush_redis(bookkeeping.url)
                    outcome = run_leg(spec, workload, server.url, args, logdir)
                    outcomes.setdefault((spec.key, workload), []).append(outcome)
                    log(f"[round {round_no + 1}/{args.rounds}] {workload:<12} {spec.label:<14} {describe(outcome)}")
    finally:
        server.cleanup()
        bookkeeping.cleanup()
    args.load_after = os.getloadavg()
    args.elapsed = time.monotonic() - started
    log(f"all legs took {args.elapsed:.0f}s; worker logs in {logdir}")

    import report

    result = report.build(args, specs, versions, outcomes, server_version())
    print(result.text_table)
    if args.write:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        md = args.out_dir / "RESULTS.md"
        md.write_text(result.markdown)
        log(f"wrote {md}")
        if args.out_dir.resolve() == readme_table.RESULTS_MD.parent.resolve():
            readme_table.update()
            log(f"wrote the benchmark table of {readme_table.README.relative_to(ROOT)} from it")
        if report.draw_chart(result, args.out_dir / "throughput.png"):
            log(f"wrote {args.out_dir / 'throughput.png'}")
    VENVS.mkdir(exist_ok=True)
    (VENVS / "last-run.json").write_text(
        json.dumps({f"{k[0]}/{k[1]}": [o.__dict__ for o in v] for k, v in outcomes.items()}, indent=1)
    )
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20_000, help="tasks per enqueue/drain workload (default 20,000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; medians are over rounds (default 3)")
    p.add_argument("--quick", action="store_true", help="smoke run: small N, 1 round, short idle")
    p.add_argument("--systems", nargs="+", default=[s.key for s in SYSTEMS], choices=[s.key for s in SYSTEMS])
    p.add_argument("--workloads", nargs="+", default=WORKLOADS, choices=WORKLOADS)
    p.add_argument("--concurrency", type=int, default=2, help="worker processes per daemon (default 2)")
    p.add_argument("--async-n", type=int, default=10_000)
    p.add_argument("--async-concurrency", type=int, default=100)
    p.add_argument("--eta-n", type=int, default=100_000)
    p.add_argument("--celery-eta-n", type=int, default=10_000, help="eta tasks for the peers (enqueued one by one)")
    p.add_argument("--latency-n", type=int, default=300)
    p.add_argument("--idle-seconds", type=float, default=10.0)
    p.add_argument("--bulk-chunk", type=int, default=1_000, help="calls per delay_many() (default 1,000)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds one leg may take (default 300)")
    p.add_argument("--made-by", default="make bench-e2e", help="the command RESULTS.md names as its maker")
    p.add_argument("--no-write", dest="write", action="store_false", help="print only; leave RESULTS.md alone")
    p.add_argument(
        "--out-dir",
        type=Path,
        help="where RESULTS.md and the chart go (default benches/; --quick:"
        " .bench-venvs/quick/, so a smoke run never overwrites the committed results)",
    )
    defaults = p.parse_args([])
    given = sys.argv[1:] if argv is None else argv
    if "--quick" in given:  # smoke-run sizes, unless given explicitly
        p.set_defaults(**QUICK)
    args = p.parse_args(given)
    if args.out_dir is None:
        args.out_dir = VENVS / "quick" if args.quick else ROOT / "benches"
    args.shortened = [
        f"{name} {getattr(args, name):,} (full: {getattr(defaults, name):,})"
        for name in ("n", "rounds", "async_n", "eta_n", "celery_eta_n", "latency_n", "idle_seconds")
        if getattr(args, name) < getattr(defaults, name)
    ]
    args.argv = sys.argv[1:] if argv is None else argv
    return args


def probe_version(spec: SystemSpec) -> Outcome:
    python = venv_python(spec)
    if not python.exists():
        return Outcome("error", message=f"{python} missing (wakaq: `make build-release`)")
    env = leg_env("redis://127.0.0.1:1/0", "version", argparse.Namespace(concurrency=2, async_concurrency=0), spec)
    proc = subprocess.run(
        [str(python), str(HERE / "leg.py"), spec.system_module, "version", "{}"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    outcome = parse_outcome(proc.stdout.decode(errors="replace"), proc.returncode, Path("/nonexistent"))
    if outcome.status != "ok":
        outcome.message = f"{outcome.message} {proc.stderr.decode(errors='replace')[-600:]}".strip()
    return outcome


def rotate(items: list[SystemSpec], by: int) -> list[SystemSpec]:
    if not items:
        return []
    k = by % len(items)
    return items[k:] + items[:k]


def describe(outcome: Outcome) -> str:
    if outcome.status != "ok":
        return f"{outcome.status}: {outcome.message[:160]}"
    return ", ".join(f"{k}={fmt(v)}" for k, v in outcome.result.items())


def fmt(value: Any) -> str:
    if value != value:  # NaN
        return "nan"
    if not isinstance(value, float):
        return f"{value:,}" if isinstance(value, int) else str(value)
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def server_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    return next((w.split("=")[1] for w in out.split() if w.startswith("v=")), out.strip())


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
