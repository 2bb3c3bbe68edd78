"""The wheel test: install a built wheel into a fresh venv per Python version and run the smoke there, without cargo.

    python tests/wheel/run.py --python 3.10 3.11 3.12 3.13 [--wheel dist/wakaq_rs-...whl]

For each version: a new venv of pyenv's interpreter (or a path to one) under .wheel-venvs/, the wheel with its `web`
extra and the test tools, then pytest on tests/wheel/smoke.py (producer, worker, scheduler, wakaq-info, wakaq-web)
and the test files that start no worker, from the repository root with every PATH entry holding cargo or rustc
dropped. Prints one tally line per version and exits 1 if any version failed. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / ".wheel-venvs"
TEST_TOOLS = ["pytest>=8", "pytest-timeout>=2.3", "pytest-benchmark>=4", "msgpack>=1.0", "uvloop>=0.19"]
# NOTE: the test files that need no worker daemon (they use Redis, the codec, eager mode, config); the smoke covers
# the worker, the scheduler and the commands.
NO_WORKER_TESTS = [
    "tests/test_codec.py",
    "tests/test_config.py",
    "tests/test_eager.py",
    "tests/test_queue.py",
    "tests/test_task.py",
    "tests/test_schedule.py",
    "tests/test_concurrency_expr.py",
    "tests/test_broker.py",
    "tests/test_durable.py",
    "tests/test_sentinel_url.py",
]


def find_python(version: str) -> Path:
    """`3.12` -> pyenv's newest 3.12.x; a path is taken as it is."""
    if os.sep in version:
        return Path(version)
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    pythons = root.glob(f"{version}.*/bin/python{version}")
    found = sorted(pythons, key=lambda p: [int(x) for x in p.parts[-3].split(".")])
    if not found:
        raise SystemExit(f"wheel test: no Python {version} under {root} (pyenv install {version})")
    return found[-1]


def newest_wheel() -> Path:
    wheels = sorted((ROOT / "dist").glob("wakaq_rs-*-abi3-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise SystemExit("wheel test: no dist/wakaq_rs-*-abi3-*.whl; run `make wheels` or pass --wheel")
    return wheels[-1]


def without_rust(path: str) -> str:
    """PATH minus every folder that holds cargo or rustc (rustup's ~/.cargo/bin, a distribution's /usr/bin)."""
    keep = [d for d in path.split(os.pathsep) if d and not any((Path(d) / t).exists() for t in ("cargo", "rustc"))]
    return os.pathsep.join(keep)


def make_venv(python: Path, wheel: Path, name: str) -> Path:
    venv = VENVS / name
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", venv], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--only-binary", "wakaq-rs", f"{wheel}[web]", *TEST_TOOLS], check=True)
    return venv


def run_tests(venv: Path, pytest_args: list[str]) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CARGO", "PYO3_PYTHON")}
    env["PATH"] = without_rust(os.pathsep.join([str(venv / "bin"), env.get("PATH", "")]))
    command = [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/wheel/smoke.py"]
    proc = subprocess.run([*command, *NO_WORKER_TESTS, *pytest_args], cwd=ROOT, env=env, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0:
        print(proc.stdout[-6000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
    return proc.returncode, lines[-1] if lines else proc.stderr.strip()[-300:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", nargs="+", required=True, help="versions (pyenv) or paths of interpreters")
    parser.add_argument("--wheel", type=Path, help="the wheel to test (default: the newest abi3 wheel in dist/)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()
    wheel = (args.wheel or newest_wheel()).resolve()
    print(f"wheel test: {wheel.name}, cargo off PATH")
    failed = 0
    for version in args.python:
        python = find_python(version)
        started = time.monotonic()
        venv = make_venv(python, wheel, Path(version).name)
        code, tally = run_tests(venv, args.pytest_args)
        failed += code != 0
        version_line = subprocess.run([python, "-V"], capture_output=True, text=True).stdout.strip()
        print(f"  {version_line:<16} {tally}  ({time.monotonic() - started:.0f} s with the venv)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
