"""Every benchmark of issue 12 in one run (`make bench-all`), into one RESULTS.md.

Runs, in order and in one go: the end-to-end table with every peer and the floors (`e2e/run.py`), the scale
curves (`e2e/curves.py`), the start-up profile (`startup_profile.py`), the CPU split behind the targets
(`e2e/cpu_split.py`) and the soak (`soak.py`), then appends all but the first to the e2e run's RESULTS.md.
`--quick` makes every part a smoke run and writes under `.bench-venvs/quick/` (each part says it is shortened);
without it everything goes to `benches/` (the committed results: run it on a quiet machine). Extra arguments go to
`e2e/run.py`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    args, rest = p.parse_known_args()
    out = ROOT / ".bench-venvs" / "quick" if args.quick else HERE
    out.mkdir(parents=True, exist_ok=True)
    quick = ["--quick"] if args.quick else []
    py = sys.executable
    e2e = [py, str(HERE / "e2e" / "run.py"), *quick, "--out-dir", str(out), "--made-by", "make bench-all", *rest]
    subprocess.run(e2e, check=True)
    subprocess.run([py, str(HERE / "e2e" / "curves.py"), *quick, "--out-dir", str(out)], check=True)
    startup = out / "startup.md"
    runs = ["--runs", "3"] if args.quick else []
    subprocess.run([py, str(HERE / "startup_profile.py"), *runs, "--out", str(startup)], check=True)
    bounds = out / "bounds.md"
    n = ["--n", "2000", "--idle", "3"] if args.quick else []
    subprocess.run([py, str(HERE / "e2e" / "cpu_split.py"), *n, "--out", str(bounds)], check=True)
    soak_md = out / "soak.md"
    soak = ["--seconds", "30", "--rate", "1000", "--kill-every", "5", "--restart-at", "15", "--interval", "5"]
    soak_run = subprocess.run([py, str(HERE / "soak.py"), *(soak if args.quick else []), "--out", str(soak_md)])
    results = out / "RESULTS.md"
    parts = [results.read_text()]
    sections = (("Scale curves", out / "curves.md"), ("Start-up", startup), ("Where the CPU goes", bounds))
    for title, path in (*sections, ("Soak", soak_md)):
        body = path.read_text() if path.exists() else "(not produced)\n"
        parts.append(f"\n# {title}\n\n" + body.split("\n", 1)[1])  # the part's own title line replaced
    if args.quick:
        parts.append("\n(--quick: the soak ran 30 s at 1,000 tasks/s, not 10 minutes at 5,000/s.)\n")
    results.write_text("".join(parts))
    print(f"wrote {results}", file=sys.stderr)
    return soak_run.returncode


if __name__ == "__main__":
    sys.exit(main())
