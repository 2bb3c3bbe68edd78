"""What abi3 costs: the abi3 wheel against the version-specific build of the same commit, in one run.

    .venv/bin/python scripts/abi3_cost.py [--rounds 5] [--n 20000] [--skip-build]

Builds both as release wheels with maturin (the version-specific one from a `git archive` copy of HEAD whose
pyproject.toml drops the `abi3` feature), installs each into its own venv of the development Python under
.bench-venvs/abi3-cost-*, then runs interleaved rounds (the order alternates) of: the codec micro benchmarks
(benches/test_codec_bench.py, wakaq's encode and decode, pytest-benchmark median), `.delay()` (benches/e2e `enqueue`)
and drain-noop (benches/e2e `drain-noop`, 2 children), each as tasks/s and as CPU time per task, against one private
redis-server; and the `import wakaq` time (best of 10 fresh interpreters). Prints a Markdown table (median and best
round of each), the change of abi3 against the version-specific build, and the load average around the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.redis_server import RedisServer  # noqa: E402

VENVS = ROOT / ".bench-venvs"
BUILDS = {"version-specific": VENVS / "abi3-cost-cp", "abi3": VENVS / "abi3-cost-abi3"}
TOOLS = ["pytest>=8", "pytest-timeout>=2.3", "pytest-benchmark>=4", "msgpack>=1.0"]
IMPORT = "import time; t = time.perf_counter(); import wakaq; print(time.perf_counter() - t)"
#: metric -> higher is better
METRICS = {
    "encode_task (µs)": False,
    "decode_task (µs)": False,
    ".delay() (tasks/s)": True,
    ".delay() CPU (µs/task)": False,
    "drain-noop (tasks/s)": True,
    "drain-noop CPU (µs/task)": False,
    "import wakaq (ms)": False,
}


def build(out: Path) -> dict[str, Path]:
    """Release wheels of HEAD: abi3 as configured, and version-specific from a copy without the feature."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target" / "abi3-cost"))
    maturin = [str(ROOT / ".venv" / "bin" / "maturin"), "build", "--release", "-i", sys.executable]
    subprocess.run([*maturin, "--out", out / "abi3"], cwd=ROOT, env=env, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        pyproject = Path(tmp) / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace(', "abi3"]', "]"))
        subprocess.run([*maturin, "--out", out / "cp"], cwd=tmp, env=env, check=True)
    return {"abi3": next((out / "abi3").glob("*.whl")), "version-specific": next((out / "cp").glob("*.whl"))}


def install(venv: Path, wheel: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(wheel), *TOOLS], check=True)


def codec(python: Path, tmp: Path) -> dict[str, float]:
    report = tmp / "codec.json"
    command = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "benches/test_codec_bench.py"]
    command += ["-k", "wakaq", "--benchmark-enable", f"--benchmark-json={report}"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    medians = {b["name"]: b["stats"]["median"] * 1e6 for b in json.loads(report.read_text())["benchmarks"]}
    return {"encode_task (µs)": medians["test_encode[wakaq]"], "decode_task (µs)": medians["test_decode[wakaq]"]}


def leg(python: Path, workload: str, url: str, n: int) -> tuple[float, float]:
    """(tasks/s, CPU µs per task): the CPU of the leg's whole process tree (producer, worker parent, children, all
    waited for), which a loaded machine disturbs far less than the rate."""
    env = dict(os.environ, BENCH_URL=url, BENCH_CONCURRENCY="2", BENCH_ASYNC_CONCURRENCY="0")
    env.update(PYTHONPATH=str(ROOT / "benches" / "e2e"), PYTHONDONTWRITEBYTECODE="1")
    options = json.dumps({"url": url, "n": n, "timeout": 120})
    command = [str(python), str(ROOT / "benches" / "e2e" / "leg.py"), "wakaq_rs", workload, options]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=300).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    outcome = json.loads(out.strip().splitlines()[-1])
    if outcome["status"] != "ok":
        raise SystemExit(f"{workload} failed: {outcome}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return float(outcome["result"]["rate"]), cpu / n * 1e6


def import_ms(python: Path) -> float:
    times = [float(subprocess.run([python, "-c", IMPORT], check=True, capture_output=True).stdout) for _ in range(10)]
    return min(times) * 1000


def one_round(python: Path, url: str, n: int, tmp: Path) -> dict[str, float]:
    found = codec(python, tmp)
    found[".delay() (tasks/s)"], found[".delay() CPU (µs/task)"] = leg(python, "enqueue", url, n)
    found["drain-noop (tasks/s)"], found["drain-noop CPU (µs/task)"] = leg(python, "drain-noop", url, n)
    found["import wakaq (ms)"] = import_ms(python)
    return found


def table(results: dict[str, list[dict[str, float]]]) -> str:
    """Median over rounds, and the best round (a loaded machine only ever makes a run slower)."""
    lines = ["| metric | version-specific | abi3 | abi3 change |", "| --- | ---: | ---: | ---: |"]
    for metric, higher_better in METRICS.items():
        for label, pick in (("median", statistics.median), ("best", max if higher_better else min)):
            cp, abi3 = (pick(r[metric] for r in results[b]) for b in ("version-specific", "abi3"))
            change = (abi3 / cp - 1) * 100
            verdict = "worse" if (-change if higher_better else change) > 0 else "better"
            lines.append(f"| {metric}, {label} | {cp:,.2f} | {abi3:,.2f} | {change:+.1f}% ({verdict}) |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=20_000, help="tasks per .delay() and drain-noop leg")
    parser.add_argument("--skip-build", action="store_true", help="reuse the venvs of the last run")
    args = parser.parse_args()
    if not args.skip_build:
        for name, wheel in build(VENVS / "abi3-cost-dist").items():
            install(BUILDS[name], wheel)
    server = RedisServer().start()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in BUILDS}
    loads = [os.getloadavg()[0]]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.rounds):
                order = list(BUILDS) if i % 2 == 0 else list(reversed(BUILDS))
                for name in order:
                    results[name].append(one_round(BUILDS[name] / "bin" / "python", server.url, args.n, Path(tmp)))
                loads.append(os.getloadavg()[0])
                print(f"round {i + 1}: load {loads[-1]:.2f}", {k: v[-1] for k, v in results.items()}, flush=True)
    finally:
        server.cleanup()
    print(json.dumps(results))
    print(table(results))
    print(f"\n{args.rounds} rounds, N = {args.n:,}; 1-min load average {min(loads):.2f} to {max(loads):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
