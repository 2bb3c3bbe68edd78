"""Scale curves (`make bench-curves`): how wakaq's cost grows with children, daemons, queues, payload size, eta
backlog and eta-set size, and its memory idle and after N tasks; WakaQ and Celery on the children curve.

Each point is one `leg.py` run (the e2e benchmark's workloads, in the system's own venv) with the point's setting in
the environment (BENCH_CONCURRENCY, BENCH_DAEMONS, BENCH_QUEUES, BENCH_PAYLOAD; see systems/wakaq_rs.py). Writes
`benches/curves.md` and one PNG per curve (`--quick`: under `.bench-venvs/quick/`, labelled as shortened). The
text under each curve is computed from the data: the log-log slope of cost per task between neighbouring points
(about 0: flat, about 1: linear) and where it bends (the slope changes by more than 0.3).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import ROOT, SYSTEMS, VENVS, ensure_venv, fmt, log, run_leg  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

SPECS = {s.key: s for s in SYSTEMS}


@dataclasses.dataclass
class Curve:
    name: str
    title: str
    x_label: str
    systems: list[str]
    workloads: list[str]
    points: list[tuple[int, dict[str, str], dict[str, Any]]]  # x, environment, option overrides
    metric: str = "steady_rate"  # what is plotted
    unit: str = "tasks/s"


def curves(quick: bool) -> list[Curve]:
    n = 1_000 if quick else 20_000
    children = [1, 2, 4] if quick else [1, 2, 4, 8]
    backlog = [1_000, 10_000] if quick else [10_000, 100_000, 1_000_000]
    eta_set = [0, 1_000, 10_000] if quick else [0, 10_000, 100_000, 1_000_000]
    payloads = [100, 10_000, 1_000_000]
    mem_n = 5_000 if quick else 100_000
    return [
        Curve(
            "children",
            "drain vs children per daemon",
            "children",
            ["wakaq_rs", "wakaq_py", "celery_app"],
            ["drain-noop", "drain-io"],
            [(c, {"BENCH_CONCURRENCY": str(c)}, {"n": n, "concurrency": c}) for c in children],
        ),
        Curve(
            "daemons",
            "drain vs daemons (2 children each)",
            "daemons",
            ["wakaq_rs"],
            ["drain-noop", "drain-io"],
            [(d, {"BENCH_DAEMONS": str(d)}, {"n": n}) for d in [1, 2, 4]],
        ),
        Curve(
            "queues",
            "drain-noop vs queues (tasks on the lowest-priority one)",
            "queues",
            ["wakaq_rs"],
            ["drain-noop"],
            [(q, {"BENCH_QUEUES": str(q)}, {"n": n}) for q in [1, 10, 100]],
        ),
        Curve(
            "payload",
            "drain-noop vs payload size",
            "payload bytes",
            ["wakaq_rs"],
            ["drain-noop"],
            # NOTE: fewer tasks for large payloads, so that N x size stays within 200 MB of Redis memory
            [(b, {"BENCH_PAYLOAD": str(b)}, {"n": max(100, min(n, 200_000_000 // b))}) for b in payloads],
        ),
        Curve(
            "eta-backlog",
            "eta: promotion and run of a backlog of due tasks",
            "due eta tasks",
            ["wakaq_rs"],
            ["eta"],
            [(b, {}, {"eta_n": b}) for b in backlog],
            metric="rate",
        ),
        Curve(
            "eta-set",
            "enqueue cost vs eta-set size",
            "eta tasks already in the set",
            ["wakaq_rs"],
            ["eta-enqueue"],
            [(s, {}, {"eta_n": s, "n": 2_000}) for s in eta_set],
            metric="us_per_call",
            unit="us per .delay(eta=)",
        ),
        Curve(
            "memory",
            f"memory: idle and after {mem_n:,} tasks",
            "children",
            ["wakaq_rs"],
            ["memory"],
            [(c, {"BENCH_CONCURRENCY": str(c)}, {"n": mem_n, "concurrency": c}) for c in [1, 2, 4]],
            metric="after_parent_uss_mb",
            unit="MB",
        ),
    ]


def base_args(quick: bool, out: Path) -> argparse.Namespace:
    return argparse.Namespace(
        n=1_000 if quick else 20_000,
        async_n=1_000,
        async_concurrency=100,
        eta_n=10_000,
        celery_eta_n=10_000,
        latency_n=100,
        idle_seconds=3.0,
        bulk_chunk=1_000,
        timeout=300.0,
        concurrency=2,
        progress_url="",
        out=out,
    )


def growth(xs: list[float], costs: list[float]) -> str:
    """How cost per task grows with x, from log-log slopes between neighbouring points."""
    pairs = [(x, c) for x, c in zip(xs, costs, strict=True) if x > 0 and c > 0]
    if len(pairs) < 2:
        return "too few points"
    slopes = [
        (math.log(c2) - math.log(c1)) / (math.log(x2) - math.log(x1))
        for (x1, c1), (x2, c2) in itertools.pairwise(pairs)
    ]

    def word(k: float) -> str:
        if abs(k) < 0.15:
            return "flat"
        if k < 0:
            return "falling"
        return "linear" if 0.8 <= k <= 1.2 else ("sub-linear" if k < 0.8 else "super-linear")

    text = ", ".join(
        f"{fmt(x1)}->{fmt(x2)}: slope {k:+.2f} ({word(k)})"
        for ((x1, _), (x2, _)), k in zip(itertools.pairwise(pairs), slopes, strict=True)
    )
    bends = [pairs[i + 1][0] for i in range(len(slopes) - 1) if abs(slopes[i + 1] - slopes[i]) > 0.3]
    return text + ("; bends at " + ", ".join(fmt(b) for b in bends) if bends else "; no bend")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: fewer and smaller points")
    p.add_argument("--only", nargs="+", help="curve names to run")
    p.add_argument("--out-dir", type=Path)
    args = p.parse_args(argv)
    out = args.out_dir or (VENVS / "quick" if args.quick else ROOT / "benches")
    out.mkdir(parents=True, exist_ok=True)
    selected = [c for c in curves(args.quick) if not args.only or c.name in args.only]
    for key in {k for c in selected for k in c.systems}:
        ensure_venv(SPECS[key])
    server, bookkeeping = RedisServer().start(), RedisServer().start()
    logdir = Path(tempfile.mkdtemp(prefix="wakaq-bench-curves-"))
    results: dict[str, list[dict[str, Any]]] = {}
    load_before, started = os.getloadavg(), time.monotonic()
    try:
        for curve in selected:
            for x, env, overrides in curve.points:
                for key in curve.systems:
                    spec = dataclasses.replace(SPECS[key], env=SPECS[key].env + tuple(env.items()))
                    for workload in curve.workloads:
                        leg_args = base_args(args.quick, out)
                        leg_args.progress_url = bookkeeping.url
                        for k, v in overrides.items():
                            setattr(leg_args, k, v)
                        outcome = run_leg(spec, workload, server.url, leg_args, logdir)
                        row = {"x": x, "system": key, "workload": workload, "status": outcome.status}
                        row.update(outcome.result or {"message": outcome.message})
                        results.setdefault(curve.name, []).append(row)
                        log(
                            f"{curve.name:<12} x={x:<8} {spec.label:<7} {workload:<11} {outcome.status} "
                            f"{fmt(outcome.result.get(curve.metric, float('nan'))) if outcome.result else ''}"
                        )
    finally:
        server.cleanup()
        bookkeeping.cleanup()
    (out / "curves.json").write_text(json.dumps(results, indent=1))
    text = render(selected, results, args, load_before, os.getloadavg(), time.monotonic() - started, out)
    (out / "curves.md").write_text(text)
    print(text)
    log(f"wrote {out / 'curves.md'}")
    return 0


def render(
    selected: list[Curve],
    results: dict[str, list[dict[str, Any]]],
    args: argparse.Namespace,
    load_before: tuple[float, ...],
    load_after: tuple[float, ...],
    elapsed: float,
    out: Path,
) -> str:
    lines = ["# Scale curves", ""]
    if args.quick:
        lines += ["**SHORTENED RUN (--quick): not final figures.**", ""]
    lines += [
        f"`python benches/e2e/curves.py {' '.join(sys.argv[1:])}`, {elapsed / 60:.0f} minutes; load average"
        f" before {' '.join(f'{v:.2f}' for v in load_before)}, after {' '.join(f'{v:.2f}' for v in load_after)}.",
        "",
    ]
    for curve in selected:
        rows = results.get(curve.name, [])
        lines += [f"## {curve.title}", "", f"![{curve.name}](curve-{curve.name}.png)", ""]
        lines += [
            f"| {curve.x_label} | system | workload | {curve.metric} ({curve.unit}) | status |",
            "|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {fmt(r['x'])} | {r['system']} | {r['workload']} | {fmt(r.get(curve.metric, ''))} | {r['status']} |"
            )
        lines.append("")
        for key in curve.systems:
            for workload in curve.workloads:
                pts = [r for r in rows if r["system"] == key and r["workload"] == workload and r["status"] == "ok"]
                xs = [float(r["x"]) for r in pts]
                values = [float(r[curve.metric]) for r in pts]
                # cost per task: the inverse of a rate; times and sizes are costs already
                costs = [1 / v if curve.metric.endswith("rate") and v else v for v in values]
                lines.append(f"- {key} {workload}: cost per task {growth(xs, costs)}")
        if curve.name == "memory":
            for r in rows:
                if r["status"] == "ok":
                    lines.append(
                        f"- {r['x']} children: parent USS idle {fmt(r['idle_parent_uss_mb'])} MB -> after"
                        f" {fmt(r['after_parent_uss_mb'])} MB; children USS idle"
                        f" {', '.join(fmt(v) for v in r['idle_child_uss_mb'])} -> after"
                        f" {', '.join(fmt(v) for v in r['after_child_uss_mb'])} MB (RSS after:"
                        f" {', '.join(fmt(v) for v in r['after_child_rss_mb'])} MB)"
                    )
        lines.append("")
        plot(curve, rows, out / f"curve-{curve.name}.png")
    return "\n".join(lines) + "\n"


def plot(curve: Curve, rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plots")
        return
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for key in curve.systems:
        for workload in curve.workloads:
            pts = [r for r in rows if r["system"] == key and r["workload"] == workload and r["status"] == "ok"]
            if pts:
                ax.plot([r["x"] for r in pts], [r[curve.metric] for r in pts], marker="o", label=f"{key} {workload}")
    ax.set_xscale(
        "log"
        if max((r["x"] for r in rows), default=1) / max(1, min((r["x"] for r in rows), default=1)) > 20
        else "linear"
    )
    ax.set_yscale("log")
    ax.set_xlabel(curve.x_label)
    ax.set_ylabel(f"{curve.metric} ({curve.unit})")
    ax.set_title(curve.title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
