"""End-to-end benchmark: wakaq vs pure-Python WakaQ 3.0.7 vs Celery 5 on the same workloads (`make bench-e2e`).

Creates a venv per foreign system under `.bench-venvs/` (a stamp file records what was installed), starts a
private redis-server, then runs every workload for every system, interleaved in rounds (the system order rotates
each round) so machine drift hits all alike. Each measurement is `leg.py` in the system's own interpreter, with a
deadline; a leg that overruns or fails is reported as "timeout"/"error" and its process group is killed.

Prints a table (median, min-max, ratios), writes `benches/RESULTS.md` and `benches/throughput.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from benches.e2e import readme_table  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

VENVS = ROOT / ".bench-venvs"
RESULTS_MD = ROOT / "benches" / "RESULTS.md"
CHART = ROOT / "benches" / "throughput.png"


@dataclass(frozen=True)
class SystemSpec:
    key: str  # module in systems/
    label: str
    requirements: tuple[str, ...]  # empty: the repo's own .venv (built by `make build-release`)


SYSTEMS = [
    SystemSpec("wakaq_rs", "wakaq", ()),
    SystemSpec("wakaq_py", "WakaQ", ("wakaq==3.0.7", "redis>=4.5,<9", "hiredis")),
    SystemSpec("celery_app", "Celery", ("celery[redis]==5.7.0", "hiredis")),
]
WORKLOADS = [
    "floor",
    "floor-push",
    "enqueue",
    "enqueue-bulk",
    "drain-noop",
    "drain-io",
    "latency",
    "async",
    "eta",
    "idle",
]
ONLY = {"enqueue-bulk": {"wakaq_rs"}, "async": {"wakaq_rs", "wakaq_py"}}  # no bulk API / no async tasks elsewhere


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
    return VENVS / spec.key / "bin" / "python"


def ensure_venv(spec: SystemSpec) -> None:
    """Create or refresh `.bench-venvs/<system>` when its stamp (the requirement list) differs."""
    if not spec.requirements:
        return
    target = VENVS / spec.key
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


def leg_env(url: str, workload: str, args: argparse.Namespace) -> dict[str, str]:
    return dict(
        os.environ,
        BENCH_URL=url,
        BENCH_CONCURRENCY=str(args.concurrency),
        BENCH_ASYNC_CONCURRENCY=str(args.async_concurrency if workload == "async" else 0),
        PYTHONPATH=str(HERE),
        PYTHONDONTWRITEBYTECODE="1",
    )


def run_leg(spec: SystemSpec, workload: str, url: str, args: argparse.Namespace, logdir: Path) -> Outcome:
    """One measurement in its own process group; whatever it leaves running is killed afterwards."""
    options = {
        "url": url,
        "n": args.n,
        "async_n": args.async_n,
        "async_concurrency": args.async_concurrency,
        "eta_n": args.eta_n if spec.key != "celery_app" else min(args.eta_n, args.celery_eta_n),
        "latency_n": args.latency_n,
        "idle_seconds": args.idle_seconds,
        "bulk_chunk": args.bulk_chunk,
        "timeout": args.timeout,
        "logdir": str(logdir),
    }
    command = [str(venv_python(spec)), str(HERE / "leg.py"), spec.key, workload, json.dumps(options)]
    out_path = logdir / f"{spec.key}-{workload}.out"
    with out_path.open("ab") as out:
        proc = subprocess.Popen(
            command, env=leg_env(url, workload, args), stdout=subprocess.PIPE, stderr=out, start_new_session=True
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
    logdir = Path(tempfile.mkdtemp(prefix="wakaq-bench-e2e-"))
    outcomes: dict[tuple[str, str], list[Outcome]] = {}
    started = time.monotonic()
    try:
        for round_no in range(args.rounds):
            for workload in workloads:
                order = rotate(available, round_no)
                for spec in order:
                    if spec.key not in ONLY.get(workload, {spec.key}):
                        continue
                    flush_redis(server.url)
                    outcome = run_leg(spec, workload, server.url, args, logdir)
                    outcomes.setdefault((spec.key, workload), []).append(outcome)
                    log(f"[round {round_no + 1}/{args.rounds}] {workload:<12} {spec.label:<7} {describe(outcome)}")
    finally:
        server.cleanup()
    log(f"all legs took {time.monotonic() - started:.0f}s; worker logs in {logdir}")

    report = build_report(args, specs, versions, outcomes, server_version())
    print(report.text_table)
    if args.write:
        RESULTS_MD.write_text(report.markdown)
        log(f"wrote {RESULTS_MD.relative_to(ROOT)}")
        readme_table.update()
        log(f"wrote the benchmark table of {readme_table.README.relative_to(ROOT)} from it")
        if draw_chart(report, CHART):
            log(f"wrote {CHART.relative_to(ROOT)}")
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
    p.add_argument("--celery-eta-n", type=int, default=10_000, help="eta tasks for Celery (enqueued one by one)")
    p.add_argument("--latency-n", type=int, default=300)
    p.add_argument("--idle-seconds", type=float, default=10.0)
    p.add_argument("--bulk-chunk", type=int, default=1_000, help="calls per delay_many() (default 1,000)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds one leg may take (default 300)")
    p.add_argument("--no-write", dest="write", action="store_false", help="print only; leave RESULTS.md alone")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.rounds, args.async_n, args.eta_n = 2_000, 1, 2_000, 10_000
        args.celery_eta_n, args.latency_n, args.idle_seconds, args.timeout = 2_000, 100, 3.0, 120.0
    args.argv = sys.argv[1:] if argv is None else argv
    return args


def probe_version(spec: SystemSpec) -> Outcome:
    python = venv_python(spec)
    if not python.exists():
        return Outcome("error", message=f"{python} missing (wakaq: `make build-release`)")
    env = leg_env("redis://127.0.0.1:1/0", "version", argparse.Namespace(concurrency=2, async_concurrency=0))
    proc = subprocess.run(
        [str(python), str(HERE / "leg.py"), spec.key, "version", "{}"], env=env, capture_output=True, timeout=60
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


# ---- the report ---------------------------------------------------------------------------------------------


@dataclass
class Report:
    text_table: str
    markdown: str
    chart_rows: list[tuple[str, dict[str, float]]]
    labels: dict[str, str]


def summarise(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def cell(outcomes: list[Outcome] | None, key: str) -> tuple[str, float | None]:
    """'median [min-max]' over the rounds that succeeded, else the first failure's status."""
    if not outcomes:
        return "-", None
    values = [float(o.result[key]) for o in outcomes if o.status == "ok" and key in o.result]
    if not values:
        return next(o.status for o in outcomes if o.status != "ok"), None
    med, lo, hi = summarise(values)
    text = fmt(med) if len(values) == 1 else f"{fmt(med)} [{fmt(lo)}-{fmt(hi)}]"
    failed = len(outcomes) - len(values)
    return (text + f" ({failed} failed)" if failed else text), med


def ratio(a: float | None, b: float | None, higher_is_better: bool) -> str:
    """How many times better a is than b (above 1: a is better)."""
    if a is None or b is None or a <= 0 or b <= 0:
        return ""
    return f"{(a / b if higher_is_better else b / a):.2f}x"


def build_report(
    args: argparse.Namespace,
    specs: list[SystemSpec],
    versions: dict[str, Outcome],
    outcomes: dict[tuple[str, str], list[Outcome]],
    redis_version: str,
) -> Report:
    labels = {s.key: label_of(s, versions[s.key]) for s in specs}
    header = ["metric", "unit", *(labels[s.key] for s in specs), "wakaq/WakaQ", "wakaq/Celery", "WakaQ/Celery"]
    rows: list[list[str]] = []
    medians: dict[tuple[str, str], dict[str, float]] = {}
    for m in METRICS:
        if m.workload not in args.workloads:
            continue
        cells, meds = [], {}
        for s in specs:
            text, med = cell(outcomes.get((s.key, m.workload)), m.key)
            cells.append(text)
            if med is not None:
                meds[s.key] = med
        medians[(m.workload, m.key)] = meds
        r, p, c = meds.get("wakaq_rs"), meds.get("wakaq_py"), meds.get("celery_app")
        rows.append([m.label, m.unit, *cells, *(ratio(a, b, m.higher_is_better) for a, b in ((r, p), (r, c), (p, c)))])
    rows += derived_rows(medians, specs)
    chart_rows = [
        (m.chart, medians.get((m.workload, m.key), {})) for m in METRICS if m.chart and medians.get((m.workload, m.key))
    ]
    notes = run_notes(args, outcomes, specs, labels)
    targets = check_targets(medians, args)
    markdown = render_markdown(args, header, rows, notes, targets, labels, redis_version)
    text = render_text(header, rows) + "\n\n" + "\n".join(targets) + "\n"
    return Report(text, markdown, chart_rows, labels)


def label_of(spec: SystemSpec, version: Outcome) -> str:
    v = version.result.get("version") if version.status == "ok" else None
    return f"{spec.label} {v}" if v else spec.label


def derived_rows(medians: dict[tuple[str, str], dict[str, float]], specs: list[SystemSpec]) -> list[list[str]]:
    floor, enq = medians.get(("floor-push", "rate"), {}), medians.get(("enqueue", "rate"), {})
    cells = [f"{100 * enq[s.key] / floor[s.key]:.0f}%" if s.key in enq and s.key in floor else "-" for s in specs]
    row = ["single .delay() / pipelined-push floor (same venv)", "%", *cells, "", "", ""]
    return [row] if any(c != "-" for c in cells) else []


def run_notes(
    args: argparse.Namespace,
    outcomes: dict[tuple[str, str], list[Outcome]],
    specs: list[SystemSpec],
    labels: dict[str, str],
) -> list[str]:
    notes = [
        "enqueue-bulk is wakaq only (`delay_many`; WakaQ 3.0.7 and Celery have no bulk enqueue); async is not run"
        " for Celery (no async tasks)",
        "drain setup (not timed): wakaq `delay_many`, WakaQ the same RPUSH its `.delay()` does in a pipeline,"
        " Celery `.delay()` in a loop; eta setup likewise (ZADD with a due time 5 s in the past)",
    ]
    for s in specs:
        idle = [o for o in outcomes.get((s.key, "idle"), []) if o.status == "ok"]
        if idle:
            notes.append(f"idle {labels[s.key]}: {idle[-1].result.get('commands') or 'no requests'}")
        eta = [o for o in outcomes.get((s.key, "eta"), []) if o.status == "ok"]
        if eta and eta[-1].result.get("n") != args.eta_n:
            notes.append(
                f"eta {labels[s.key]}: {eta[-1].result['n']:,} tasks (enqueued one by one), not {args.eta_n:,}"
            )
        for (key, workload), outs in sorted(outcomes.items()):
            if key == s.key:
                for o in outs:
                    if o.status != "ok":
                        notes.append(f"{workload} {labels[s.key]}: {o.status}: {o.message[:300]}")
    return notes


def check_targets(medians: dict[tuple[str, str], dict[str, float]], args: argparse.Namespace) -> list[str]:
    """The issue's targets for the wakaq leg, from this run's medians."""

    def get(workload: str, key: str, system: str = "wakaq_rs") -> float | None:
        return medians.get((workload, key), {}).get(system)

    def line(name: str, value: float | None, limit: float | None, ok: bool | None, shown: str) -> str:
        if value is None or limit is None or ok is None:
            return f"- [ ] {name}: not measured"
        return f"- [{'x' if ok else ' '}] {name}: {shown} ({'met' if ok else 'NOT met'})"

    def at_least(workload: str, key: str, other: str, factor: float, name: str) -> str:
        a, b = get(workload, key), get(workload, key, other)
        ok = None if a is None or b is None else a >= factor * b
        return line(name, a, b, ok, f"{a / b:.1f}x" if a and b else "")

    out = ["Targets (wakaq leg, medians of this run):"]
    out.append(at_least("drain-noop", "rate", "wakaq_py", 10, "drain-noop >= 10x WakaQ"))
    out.append(at_least("drain-noop", "rate", "celery_app", 50, "drain-noop >= 50x Celery"))
    out.append(at_least("drain-io", "rate", "wakaq_py", 3, "drain-io >= 3x WakaQ"))
    # NOTE: against the pipelined-push floor (the same push in one round trip, no client overhead), not INCR:
    # one redis-py INCR per round trip is slower than wakaq's own .delay(), a floor that cannot be missed
    enq, floor = get("enqueue", "rate"), get("floor-push", "rate")
    share = enq / floor if enq and floor else None
    out.append(
        line(
            "single .delay() >= 95% of the pipelined-push floor",
            share,
            0.95,
            share and share >= 0.95,
            f"{100 * (share or 0):.0f}%",
        )
    )
    bulk = get("enqueue-bulk", "rate")
    out.append(line("bulk enqueue >= 200,000/s", bulk, 200_000, bulk and bulk >= 200_000, f"{fmt(bulk or 0.0)}/s"))
    p50, p50_py, p99 = get("latency", "p50_ms"), get("latency", "p50_ms", "wakaq_py"), get("latency", "p99_ms")
    out.append(line("latency p50 <= WakaQ's", p50, p50_py, p50 and p50_py and p50 <= p50_py, f"{fmt(p50 or 0.0)} ms"))
    out.append(line("latency p99 <= 1 ms", p99, 1.0, p99 and p99 <= 1.0, f"{fmt(p99 or 0.0)} ms"))
    x = get("async", "x_ideal")
    out.append(line("async <= 1.5x ideal", x, 1.5, x and x <= 1.5, f"{fmt(x or 0.0)}x"))
    eta_s = get("eta", "seconds")
    out.append(
        line(f"eta: {args.eta_n:,} due tasks within 10 s", eta_s, 10.0, eta_s and eta_s <= 10, f"{fmt(eta_s or 0.0)} s")
    )
    cpu, cmds = get("idle", "cpu_pct"), get("idle", "redis_cmds_per_s")
    out.append(line("idle daemon < 1% of a core", cpu, 1.0, cpu is not None and cpu < 1.0, f"{fmt(cpu or 0.0)}%"))
    # wait_timeout is 1 s: at most one idle wait per process per second (parent + children), plus the heartbeat
    budget = args.concurrency + 1 + 0.5
    out.append(
        line(
            f"idle Redis requests <= {budget:g}/s",
            cmds,
            budget,
            cmds is not None and cmds <= budget,
            f"{fmt(cmds or 0.0)}/s",
        )
    )
    return out


def render_text(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def render_markdown(
    args: argparse.Namespace,
    header: list[str],
    rows: list[list[str]],
    notes: list[str],
    targets: list[str],
    labels: dict[str, str],
    redis_version: str,
) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(
        [
            "# End-to-end benchmark results",
            "",
            f"Generated by `make bench-e2e` (`python benches/e2e/run.py {' '.join(args.argv)}`) on {now}.",
            "",
            f"- machine: {machine()}",
            f"- Python {platform.python_version()}, redis-server {redis_version} on loopback (private, no persistence)",
            f"- systems: {', '.join(labels.values())}; {args.concurrency} worker processes each, results off",
            f"- N = {args.n:,} tasks (enqueue, drain), {args.rounds} round(s) interleaved; async {args.async_n:,} tasks"
            f" x {1000 * 0.01:.0f} ms, async_concurrency {args.async_concurrency}; eta {args.eta_n:,} due tasks;"
            f" latency {args.latency_n} tasks 5 ms apart; idle {args.idle_seconds:g} s",
            "",
            "Cells: median [min-max] over rounds. Ratio columns: how many times better the first system is"
            " (throughput divided, times and latencies inverted); above 1 is better.",
            "",
            *table,
            "",
            *targets,
            "",
            "Notes:",
            "",
            *(f"- {n}" for n in notes),
            "",
            "![throughput per system](throughput.png)",
            "",
        ]
    )


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = next(
        (ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")), "0"
    )
    return f"{model}, {os.cpu_count()} cores, {int(mem) / 2**20:.0f} GiB RAM, Linux {platform.release()}"


def draw_chart(report: Report, path: Path) -> bool:
    """Grouped bars of throughput per system (log scale: the systems differ by orders of magnitude)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install '.[bench]'): no chart")
        return False
    systems = [k for k in ("wakaq_rs", "wakaq_py", "celery_app") if any(k in m for _, m in report.chart_rows)]
    if not report.chart_rows or not systems:
        return False
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=110)
    width = 0.8 / len(systems)
    for i, key in enumerate(systems):
        xs = [j + (i - (len(systems) - 1) / 2) * width for j in range(len(report.chart_rows))]
        values = [m.get(key, 0.0) for _, m in report.chart_rows]
        bars = ax.bar(xs, values, width, label=report.labels.get(key, key))
        ax.bar_label(bars, labels=[fmt(v) if v else "" for v in values], fontsize=7, rotation=90, padding=2)
    ax.set_xticks(range(len(report.chart_rows)), [label for label, _ in report.chart_rows], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("tasks per second (median, log scale)")
    ax.set_title("wakaq vs WakaQ vs Celery: throughput, 2 worker processes, Redis loopback")
    ax.legend(fontsize=8)
    ax.margins(y=0.25)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


if __name__ == "__main__":
    sys.exit(main())
