"""The report of one `run.py` run: the main table (with each wakaq row's ratio to its floor), the delivery tally
(awaited, missing, extra), the Redis cost per task, the targets, RESULTS.md and the throughput chart."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from run import COSTS, FLOOR_OF, MAX_N, METRICS, TALLIED, Outcome, SystemSpec, fmt, log

Medians = dict[tuple[str, str], dict[str, float]]


@dataclass
class Report:
    text_table: str
    markdown: str
    chart_rows: list[tuple[str, dict[str, float]]]
    labels: dict[str, str]


def cell(outcomes: list[Outcome] | None, key: str) -> tuple[str, float | None]:
    """'median [min-max]' over the rounds that succeeded, else the first failure's status."""
    if not outcomes:
        return "-", None
    values = [float(o.result[key]) for o in outcomes if o.status == "ok" and key in o.result]
    if not values:
        return next((o.status for o in outcomes if o.status != "ok"), "-"), None
    med, lo, hi = statistics.median(values), min(values), max(values)
    text = fmt(med) if len(values) == 1 else f"{fmt(med)} [{fmt(lo)}-{fmt(hi)}]"
    failed = len(outcomes) - len(values)
    return (text + f" ({failed} failed)" if failed else text), med


def ratio(a: float | None, b: float | None, higher_is_better: bool) -> str:
    """How many times better a is than b (above 1: a is better)."""
    if a is None or b is None or a <= 0 or b <= 0:
        return ""
    return f"{(a / b if higher_is_better else b / a):.2f}x"


def share(value: float | None, floor: float | None, higher_is_better: bool = True) -> str:
    """value as a share of its floor (throughput: value/floor; cost: floor/value), in percent."""
    if value is None or floor is None or value <= 0 or floor <= 0:
        return ""
    return f"{100 * (value / floor if higher_is_better else floor / value):.0f}%"


def build(
    args: argparse.Namespace,
    specs: list[SystemSpec],
    versions: dict[str, Outcome],
    outcomes: dict[tuple[str, str], list[Outcome]],
    redis_version: str,
) -> Report:
    labels = {s.key: label_of(s, versions[s.key]) for s in specs}
    peers = [s for s in specs if s.key != "wakaq_rs"]
    header = ["metric", "unit", *(labels[s.key] for s in specs), "wakaq / floor", "wakaq / WakaQ", "wakaq / best peer"]
    rows: list[list[str]] = []
    medians: Medians = {}
    for workload, key in {(m.workload, m.key) for m in METRICS} | set(FLOOR_OF) | set(FLOOR_OF.values()):
        medians[(workload, key)] = {
            s.key: med for s in specs if (med := cell(outcomes.get((s.key, workload)), key)[1]) is not None
        }
    for m in METRICS:
        if m.workload not in args.workloads:
            continue
        meds = medians[(m.workload, m.key)]
        if not any(outcomes.get((s.key, m.workload)) for s in specs):
            continue
        cells = [cell(outcomes.get((s.key, m.workload)), m.key)[0] for s in specs]
        mine = meds.get("wakaq_rs")
        floor_key = FLOOR_OF.get((m.workload, m.key))
        floor = medians.get(floor_key, {}).get("wakaq_rs") if floor_key else None
        peer_values = [meds[s.key] for s in peers if s.key in meds]
        best = (max if m.higher_is_better else min)(peer_values) if peer_values else None
        if m.workload.startswith("floor"):  # a floor is not compared: it is what the others are compared with
            rows.append([m.label, m.unit, *cells, "", "", ""])
            continue
        rows.append(
            [
                m.label,
                m.unit,
                *cells,
                share(mine, floor),
                ratio(mine, meds.get("wakaq_py"), m.higher_is_better),
                ratio(mine, best, m.higher_is_better),
            ]
        )
    rows += derived_rows(medians, specs)
    chart_rows = [(m.chart, medians[(m.workload, m.key)]) for m in METRICS if m.chart and medians[(m.workload, m.key)]]
    tally = tally_table(specs, labels, outcomes)
    costs = cost_table(specs, labels, outcomes, medians)
    notes = run_notes(args, outcomes, specs, labels)
    targets = check_targets(medians, args)
    markdown = render_markdown(args, header, rows, tally, costs, notes, targets, labels, redis_version)
    text = "\n\n".join([render_text(header, rows), render_text(*tally), render_text(*costs), "\n".join(targets)])
    return Report(text + "\n", markdown, chart_rows, labels)


def derived_rows(medians: Medians, specs: list[SystemSpec]) -> list[list[str]]:
    """Each system's single enqueue as a share of the pipelined-push floor measured in its own venv."""
    floor, enq = medians.get(("floor-push", "rate"), {}), medians.get(("enqueue", "rate"), {})
    cells = [f"{100 * enq[s.key] / floor[s.key]:.0f}%" if s.key in enq and s.key in floor else "-" for s in specs]
    row = ["single .delay() / pipelined-push floor (same venv)", "%", *cells, "", "", ""]
    return [row] if any(c != "-" for c in cells) else []


def label_of(spec: SystemSpec, version: Outcome) -> str:
    v = version.result.get("version") if version.status == "ok" else None
    return f"{spec.label} {v}" if v else spec.label


def tally_table(
    specs: list[SystemSpec], labels: dict[str, str], outcomes: dict[tuple[str, str], list[Outcome]]
) -> tuple[list[str], list[list[str]]]:
    """Per system and drain workload, over every round: tasks awaited, missing (never ran) and extra (ran again)."""
    header = ["system", *(f"{w}: awaited / missing / extra" for w in TALLIED)]
    rows = []
    for s in specs:
        row = [labels[s.key]]
        for w in TALLIED:
            outs = [o for o in outcomes.get((s.key, w), []) if "awaited" in o.result]
            if not outs:
                row.append("-")
                continue
            awaited, missing, extra = (sum(int(o.result[k]) for o in outs) for k in ("awaited", "missing", "extra"))
            row.append(f"{awaited:,} / {missing:,} / {extra:,}")
        rows.append(row)
    return header, rows


def cost_table(
    specs: list[SystemSpec],
    labels: dict[str, str],
    outcomes: dict[tuple[str, str], list[Outcome]],
    medians: Medians,
) -> tuple[list[str], list[list[str]]]:
    """Redis CPU microseconds and commands (inside scripts included) per task, medians over rounds."""
    header = ["system", *(f"{label}: us / cmds" for _, label in COSTS)]
    rows = []
    for s in specs:
        row = [labels[s.key]]
        for workload, _ in COSTS:
            us = cell(outcomes.get((s.key, workload)), "redis_us")[1]
            cmds = cell(outcomes.get((s.key, workload)), "redis_cmds")[1]
            row.append(f"{fmt(us)} / {fmt(cmds)}" if us is not None and cmds is not None else "-")
        rows.append(row)
    floor = {
        "enqueue": ("floor-bulk", "single_"),
        "enqueue-bulk": ("floor-bulk", "multi_"),
        "drain-noop": ("floor-noop", ""),
        "drain-io": ("floor-io", ""),
    }
    row = ["floor (same work, no queue)"]
    for workload, _ in COSTS:
        if workload not in floor:
            row.append("-")
            continue
        w, prefix = floor[workload]
        us = cell(outcomes.get(("wakaq_rs", w)), f"{prefix}redis_us")[1]
        cmds = cell(outcomes.get(("wakaq_rs", w)), f"{prefix}redis_cmds")[1]
        row.append(f"{fmt(us)} / {fmt(cmds)}" if us is not None and cmds is not None else "-")
    rows.append(row)
    return header, rows


def run_notes(
    args: argparse.Namespace,
    outcomes: dict[tuple[str, str], list[Outcome]],
    specs: list[SystemSpec],
    labels: dict[str, str],
) -> list[str]:
    notes = [
        "enqueue-bulk: wakaq `delay_many` and RQ `enqueue_many` (the others have no bulk enqueue); async: wakaq,"
        " WakaQ and arq (the others have no async tasks at their defaults)",
        "drain setup (not timed): wakaq `delay_many`, WakaQ the same RPUSH its `.delay()` does in a pipeline, RQ"
        " `enqueue_many`, the others their enqueue call in a loop; eta setup likewise (due 5 s ago)",
        "floors run in wakaq's venv with the same processes, payloads and batch size as the wakaq worker; see"
        " benches/e2e/floors.py",
    ]
    for s in specs:
        if s.key in MAX_N and MAX_N[s.key] < args.n:
            notes.append(
                f"{labels[s.key]}: N = {MAX_N[s.key]:,} (not {args.n:,}) per enqueue/drain leg, to fit its deadline"
            )
        idle = [o for o in outcomes.get((s.key, "idle"), []) if o.status == "ok"]
        if idle:
            notes.append(f"idle {labels[s.key]}: {idle[-1].result.get('commands') or 'no requests'}")
        drain = [o for o in outcomes.get((s.key, "drain-noop"), []) if o.status == "ok"]
        if drain and drain[-1].result.get("redis_top"):
            notes.append(f"drain-noop {labels[s.key]}: Redis commands per task: {drain[-1].result['redis_top']}")
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


def check_targets(medians: Medians, args: argparse.Namespace) -> list[str]:
    """The issues' targets for the wakaq leg, from this run's medians."""

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

    def of_floor(workload: str, key: str, floor: tuple[str, str], part: float, name: str) -> str:
        a, f = get(workload, key), get(*floor)
        s = a / f if a and f else None
        return line(name, s, part, None if s is None else s >= part, f"{100 * (s or 0):.0f}%")

    out = ["Targets (wakaq leg, medians of this run):"]
    out.append(at_least("drain-noop", "rate", "wakaq_py", 10, "drain-noop (with start-up) >= 10x WakaQ"))
    out.append(at_least("drain-noop", "rate", "celery_app", 50, "drain-noop >= 50x Celery"))
    out.append(at_least("drain-io", "rate", "wakaq_py", 3, "drain-io >= 3x WakaQ"))
    out.append(of_floor("drain-io", "steady_rate", ("floor-io", "rate"), 0.9, "drain-io >= 90% of its floor"))
    out.append(
        of_floor("enqueue-bulk", "rate", ("floor-bulk", "bulk_rate"), 0.95, "delay_many >= 95% of the bulk-push floor")
    )
    out.append(
        # NOTE: against the pipelined-push floor (the same push in one round trip, no client overhead), not INCR:
        # one redis-py INCR per round trip is slower than wakaq's own .delay(), a floor that cannot be missed
        of_floor("enqueue", "rate", ("floor-push", "rate"), 0.95, "single .delay() >= 95% of the pipelined-push floor")
    )
    bulk = get("enqueue-bulk", "rate")
    out.append(line("bulk enqueue >= 200,000/s", bulk, 200_000, bulk and bulk >= 200_000, f"{fmt(bulk or 0.0)}/s"))
    us = get("drain-noop", "redis_us")
    out.append(line("Redis CPU <= 10 us per drained task", us, 10, us is not None and us <= 10, f"{fmt(us or 0.0)} us"))
    up, up_py = get("drain-noop", "startup_s"), get("drain-noop", "startup_s", "wakaq_py")
    out.append(line("start-up <= WakaQ's", up, up_py, up and up_py and up <= up_py, f"{fmt(up or 0.0)} s"))
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


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return table + ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]


def render_markdown(
    args: argparse.Namespace,
    header: list[str],
    rows: list[list[str]],
    tally: tuple[list[str], list[list[str]]],
    costs: tuple[list[str], list[list[str]]],
    notes: list[str],
    targets: list[str],
    labels: dict[str, str],
    redis_version: str,
) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    shortened = []
    if args.shortened or args.quick:
        shortened = [
            "**SHORTENED RUN: not final figures.** Shortened: "
            + (", ".join(args.shortened) or "--quick")
            + f". Load average before/after: {fmt_load(args.load_before)} / {fmt_load(args.load_after)}"
            " (a busy machine lowers every figure).",
            "",
        ]
    return "\n".join(
        [
            "# End-to-end benchmark results",
            "",
            *shortened,
            f"Generated by `{args.made_by}` ({'' if args.made_by == 'make bench-e2e' else 'first '}"
            f"`python benches/e2e/run.py {' '.join(args.argv)}`) on {now}, in"
            f" {args.elapsed / 60:.0f} minutes.",
            "",
            f"- machine: {machine()}; load average before {fmt_load(args.load_before)}, after"
            f" {fmt_load(args.load_after)}",
            f"- Python {platform.python_version()}, redis-server {redis_version} on loopback (private, no persistence;"
            " the benchmark's own counters on a second private server)",
            f"- systems: {', '.join(labels.values())}; {args.concurrency} worker processes each, results off",
            f"- N = {args.n:,} tasks (enqueue, drain, floors), {args.rounds} round(s) interleaved; async"
            f" {args.async_n:,} tasks x 10 ms, async_concurrency {args.async_concurrency}; eta {args.eta_n:,} due"
            f" tasks (peers {args.celery_eta_n:,}); latency {args.latency_n} tasks 5 ms apart; idle"
            f" {args.idle_seconds:g} s",
            "",
            "Cells: median [min-max] over rounds. `wakaq / floor`: the wakaq figure as a share of the same work done"
            " with no queue (benches/e2e/floors.py). Ratio columns: how many times better wakaq is (throughput"
            " divided, times and latencies inverted); above 1 is better.",
            "",
            *markdown_table(header, rows),
            "",
            "## Delivery tally (every round, every system)",
            "",
            "Each task records its id in a bitmap; missing = awaited ids that never ran, extra = runs beyond the"
            " first of an id.",
            "",
            *markdown_table(*tally),
            "",
            "## Redis cost per task",
            "",
            "Redis CPU (INFO cpu: used_cpu_user + used_cpu_sys) and commands (INFO commandstats, calls inside Lua"
            " scripts included, our INFO calls excluded) per task: enqueue over the timed calls, drains from worker"
            " start to the last task (start-up included). The benchmark's own counters go to another server.",
            "",
            *markdown_table(*costs),
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


def fmt_load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{v:.2f}" for v in load)


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
    systems = [k for k in report.labels if any(k in m for _, m in report.chart_rows)]
    if not report.chart_rows or not systems:
        return False
    fig, ax = plt.subplots(figsize=(12, 5), dpi=110)
    width = 0.85 / len(systems)
    for i, key in enumerate(systems):
        xs = [j + (i - (len(systems) - 1) / 2) * width for j in range(len(report.chart_rows))]
        values = [m.get(key, 0.0) for _, m in report.chart_rows]
        bars = ax.bar(xs, values, width, label=report.labels.get(key, key))
        ax.bar_label(bars, labels=[fmt(v) if v else "" for v in values], fontsize=5, rotation=90, padding=2)
    ax.set_xticks(range(len(report.chart_rows)), [label for label, _ in report.chart_rows], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("tasks per second (median, log scale)")
    ax.set_title("throughput per system: 2 worker processes each, Redis on loopback")
    ax.legend(fontsize=7, ncol=3)
    ax.margins(y=0.25)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
