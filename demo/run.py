"""`make demo`: a worker daemon, a scheduler and a producer against a throwaway Redis, with live progress.

Uses `WAKAQ_URL` when set (under its own key prefix, so nothing of yours is touched); otherwise starts a private
`redis-server` on a free port. It prints the commands to try while it runs (the demo app, demo/app.py, reads its
Redis URL from `WAKAQ_DEMO_URL` and its key prefix from `WAKAQ_DEMO_PREFIX`), and in a terminal keeps everything
running after the summary until Ctrl-C (`--once`: stop after the summary; `--stay`: keep running without a
terminal). Ctrl-C or SIGTERM stops everything it started: the web server, the worker and its children, the
scheduler and the redis-server.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import psutil  # type: ignore[import-untyped]
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.redis_server import RedisServer  # noqa: E402

N_FAST, N_SLOW, N_ASYNC, N_ETA = 2000, 10, 100, 5
QUEUES = ("high", "slow", "default")
DEADLINE = 60.0


@contextmanager
def redis_url() -> Iterator[tuple[str, str]]:
    given = os.environ.get("WAKAQ_URL")
    if given:
        yield given, f"wakaq-demo-{secrets.token_hex(3)}"
        return
    server = RedisServer()
    try:
        # WARN: redis-server would get a terminal's Ctrl-C too (same process group) and quit before the worker has
        # stopped; SIGINT blocked here stays blocked in it (the mask survives fork and exec); SIGTERM stops it.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            server.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        print(f"started a throwaway redis-server on port {server.port}")
        yield server.url, "wakaq"
    finally:
        server.cleanup()


def start(kind: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    cmd = [sys.executable, "-m", "wakaq", kind, "--app", "demo.app.wakaq"]
    return spawn(cmd, env, out)


def spawn(cmd: list[str], env: dict[str, str], out: IO[bytes]) -> subprocess.Popen[bytes]:
    """NOTE: in a session of its own, so a terminal's Ctrl-C reaches only the demo, which then stops everything
    in order (the web server, the worker, the scheduler, then Redis) instead of all at once."""
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)


def start_web(env: dict[str, str], log: Path, procs: dict[str, subprocess.Popen[bytes]]) -> str:
    """`wakaq-web` on a free loopback port (in `procs` before it is waited for, so a signal meanwhile stops it too);
    returns the dashboard's URL."""
    out = log.open("wb")
    cmd = [sys.executable, "-m", "wakaq", "web", "--app", "demo.app.wakaq", "--port", "0"]
    proc = procs["web"] = spawn(cmd, env, out)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"dashboard at (http://\S+/)", log.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.05)
    return ""


class Stopped(Exception):
    """SIGTERM (or SIGINT) arrived: unwind, stopping everything started so far."""


def stop_on_signals() -> None:
    """SIGINT and SIGTERM raise `Stopped` once; while the demo cleans up, further ones are ignored, so a second
    Ctrl-C cannot interrupt the cleanup half-way and orphan a process."""

    def handler(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Stopped(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def stop(proc: subprocess.Popen[bytes], grace: float = 15.0) -> int | None:
    """SIGTERM, then SIGKILL after `grace` seconds; the process's own children (the worker's) are killed too if
    they outlive it."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
    except psutil.Error:
        family = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    _, alive = psutil.wait_procs(family, timeout=2)
    for child in alive:
        with suppress(psutil.Error):
            child.kill()
    return proc.returncode


def produce() -> float:
    from demo import app

    started = time.monotonic()
    app.fast.delay_many([((i,), {}) for i in range(N_FAST)])
    for i in range(N_SLOW):
        app.slow.delay(i)
    for i in range(N_ASYNC):
        app.io_bound.delay(i)
    for _ in range(N_ETA):
        due = time.time() + app.ETA.total_seconds()
        app.later.delay(due, eta=app.ETA)
    app.too_slow.delay()
    app.broken.delay()
    return started


def expected_done() -> dict[str, int]:
    return {"fast": N_FAST, "slow": N_SLOW, "async": N_ASYNC, "eta": N_ETA}


def snapshot(client: redis.Redis, prefix: str) -> tuple[dict[str, int], int, int]:
    counts = {k.decode(): int(v) for k, v in client.hgetall("demo:count").items()}
    pending = sum(int(client.llen(f"{prefix}:{q}")) for q in QUEUES)
    failed = sum(int(client.llen(f"{prefix}:failed:{q}")) for q in QUEUES)
    return counts, pending, failed


def finished(counts: dict[str, int], failed: int) -> bool:
    return all(counts.get(k, 0) >= n for k, n in expected_done().items()) and failed >= 2


def progress(client: redis.Redis, prefix: str, started: float) -> tuple[dict[str, int], int, float, float]:
    """Live progress until everything is accounted for; returns counts, failed, elapsed and the fast-drain rate."""
    deadline = time.monotonic() + DEADLINE
    tty = sys.stdout.isatty()
    first_done = fast_done = None
    last_line = 0.0
    while True:
        counts, pending, failed = snapshot(client, prefix)
        now = time.monotonic()
        done = sum(counts.get(k, 0) for k in expected_done())
        if first_done is None and done:
            first_done = now
        if fast_done is None and counts.get("fast", 0) >= N_FAST:
            fast_done = now
        line = f"  {now - started:5.1f}s  pending {pending:5d}  done {done:5d}  failed {failed}"
        if tty:
            print("\r" + line, end="", flush=True)
        elif now - last_line >= 1.0:
            print(line, flush=True)
            last_line = now
        if finished(counts, failed) or now > deadline:
            print()
            rate = N_FAST / max(1e-3, fast_done - first_done) if first_done and fast_done else 0.0
            return counts, failed, now - started, rate
        time.sleep(0.05)


def summary(counts: dict[str, int], failed: int, elapsed: float, rate: float, client: redis.Redis, prefix: str) -> bool:
    print("\nwhat happened:")
    rows = [
        ("fast tasks (queue high)", counts.get("fast", 0), N_FAST),
        ("slow tasks (queue slow, 0.2 s each)", counts.get("slow", 0), N_SLOW),
        ("async tasks (0.3 s sleep, run concurrently)", counts.get("async", 0), N_ASYNC),
        ("eta tasks (due 2 s after sending)", counts.get("eta", 0), N_ETA),
    ]
    for label, got, want in rows:
        print(f"  {label:48s} {got:5d} / {want}")
    print(f"  {'eta tasks that started early':48s} {counts.get('eta-early', 0):5d}")
    print(f"  {'too_slow: attempts (soft timeout, 1 retry)':48s} {counts.get('too_slow-attempt', 0):5d}")
    print(f"  {'broken: attempts (raises ValueError)':48s} {counts.get('broken-attempt', 0):5d}")
    print(f"  {'scheduled ticks (every 5 s)':48s} {counts.get('tick', 0):5d}")
    print(f"  {'recorded failed':48s} {failed:5d}")
    for queue in ("slow", "default"):
        for raw in client.lrange(f"{prefix}:failed:{queue}", 0, -1):
            from wakaq._wakaq import unpackb

            record = unpackb(raw)
            print(f"    - {queue}: {record['reason']}")
    done = sum(counts.get(k, 0) for k in expected_done())
    print(f"  {'tasks done':48s} {done:5d} in {elapsed:.1f} s (mostly waiting for the timeouts above)")
    print(f"  {'fast tasks drained at':48s} {rate:7,.0f} tasks/s (2 children, measured from the first task)")
    return finished(counts, failed) and counts.get("eta-early", 0) == 0


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screenshot", type=Path, help="capture the dashboard (headless Chromium) into this PNG")
    stay = parser.add_mutually_exclusive_group()
    stay.add_argument("--once", dest="stay", action="store_false", help="stop after the summary (one-shot run)")
    stay.add_argument("--stay", dest="stay", action="store_true", help="keep running until Ctrl-C or SIGTERM")
    parser.set_defaults(stay=None)
    args = parser.parse_args(argv)
    if args.stay is None:  # NOTE: in a terminal someone is there to look at the dashboard and press Ctrl-C
        args.stay = sys.stdin.isatty() and sys.stdout.isatty()
    return args


def command_line(tool: str, url: str, prefix: str, *args: str) -> str:
    """A shell command that works as printed from the repository root: the demo app is `demo.app.wakaq`, which
    reads the Redis URL (and key prefix) from the environment; the tool is the one next to this Python."""
    exe = Path(sys.executable).parent / tool
    exe = exe.relative_to(ROOT) if exe.is_relative_to(ROOT) else exe
    env = f"WAKAQ_DEMO_URL={url}" + ("" if prefix == "wakaq" else f" WAKAQ_DEMO_PREFIX={prefix}")
    return " ".join([env, str(exe), "--app=demo.app.wakaq", *args])


def commands(url: str, prefix: str, dashboard: str) -> list[str]:
    return [
        command_line("wakaq-info", url, prefix),
        command_line("wakaq-info", url, prefix, "--watch"),
        command_line("wakaq-failed", url, prefix, "list"),
        f"curl -s {dashboard}metrics" if dashboard else "",
    ]


def print_commands(url: str, prefix: str, dashboard: str) -> None:
    print(f"\ndashboard: {dashboard or 'did not start, see .tmp/demo-web.log'}")
    print("try these in another terminal, from the repository root, while the demo runs:")
    for line in filter(None, commands(url, prefix, dashboard)):
        print(f"  {line}")
    print(flush=True)


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    stop_on_signals()
    try:
        return run(args)
    except Stopped as e:
        print(f"\n{e}: stopped everything the demo started")
        return 130 if str(e) == "SIGINT" else 143


def run(args: argparse.Namespace) -> int:
    with redis_url() as (url, prefix):
        env = dict(os.environ, WAKAQ_DEMO_URL=url, WAKAQ_DEMO_PREFIX=prefix, PYTHONPATH=str(ROOT))
        os.environ.update(WAKAQ_DEMO_URL=url, WAKAQ_DEMO_PREFIX=prefix)
        client = redis.Redis.from_url(url)
        client.delete("demo:count")
        logs = ROOT / ".tmp"
        logs.mkdir(exist_ok=True)
        procs: dict[str, subprocess.Popen[bytes]] = {}
        codes: dict[str, int | None] = {}
        ok = False
        try:
            procs["worker"] = start("worker", env, logs / "demo-worker.log")
            procs["scheduler"] = start("scheduler", env, logs / "demo-scheduler.log")
            dashboard = start_web(env, logs / "demo-web.log", procs)
            print_commands(url, prefix, dashboard)
            print("worker (2 children) and scheduler started; sending tasks ...")
            ok = demonstrate(client, prefix, args, dashboard)
            if args.stay:
                print(f"\neverything keeps running: dashboard at {dashboard}; Ctrl-C (or SIGTERM) stops it all")
                with suppress(Stopped):
                    while True:
                        signal.pause()
        finally:
            for name in ("web", "worker", "scheduler"):  # NOTE: Redis stays up until they are gone
                if name in procs:
                    codes[name] = stop(procs[name])
            print(f"\nworker exited {codes.get('worker')}, scheduler exited {codes.get('scheduler')}", end="")
            print("; logs in .tmp/demo-*.log")
            with suppress(Exception):
                client.close()
        ok = ok and codes.get("worker") == 0 and codes.get("scheduler") == 0
        print("demo OK" if ok else "demo FAILED")
        return 0 if ok else 1


def demonstrate(client: redis.Redis, prefix: str, args: argparse.Namespace, dashboard: str) -> bool:
    started = produce()
    counts, failed, elapsed, rate = progress(client, prefix, started)
    ok = summary(counts, failed, elapsed, rate, client, prefix)
    ok = features() and ok
    print(failed_records(client, prefix))
    if args.screenshot and dashboard:
        from demo.screenshot import capture, steady_load

        steady_load()
        print("screenshots: " + ", ".join(str(p) for p in capture(dashboard, args.screenshot)))
    return ok


def failed_records(client: redis.Redis, prefix: str) -> str:
    """What the dashboard's Failed badge counts: the records in the failed lists, failures and cancellations."""
    from wakaq._wakaq import unpackb

    reasons = [unpackb(raw)["reason"] for q in QUEUES for raw in client.lrange(f"{prefix}:failed:{q}", 0, -1)]
    cancelled = sum(1 for r in reasons if r == "cancelled by admin")
    return (
        f"\nthe failed lists now hold {len(reasons)} records (the dashboard's Failed): "
        f"{len(reasons) - cancelled} failed + {cancelled} cancelled by admin"
    )


def features() -> bool:
    """The opt-in task features, each in one line: results, retries with backoff, uniqueness, cancel."""
    from datetime import timedelta

    from demo import app
    from wakaq import TaskFailed

    print("\ntask features (opt-in):")
    value = app.square.delay(12).result(timeout=10)
    print(f"  {'results: square.delay(12).result()':48s} {value}")
    retried = app.flaky.delay(secrets.token_hex(4))
    outcome = retried.result(timeout=20)
    print(f"  {'retries: flaky (TimeoutError twice, backoff)':48s} {outcome}")
    first, second = app.rebuild.delay("acct-1"), app.rebuild.delay("acct-1")
    unique = first is not None and second is None
    said_unique = "one enqueued, the duplicate refused" if unique else "NOT unique"
    print(f"  {'unique: rebuild.delay(a) twice':48s} {said_unique}")
    later = app.square.delay(5, eta=timedelta(minutes=5))
    said = app.wakaq.cancel(later.id)
    try:
        later.result(timeout=5)
        cancelled = False
    except TaskFailed as e:
        cancelled = e.status == "cancelled"
    print(f"  {'cancel: an eta task, by its id':48s} {said}, its result says {later.status()}")
    return value == 144 and outcome == "ok on attempt 3" and unique and cancelled


if __name__ == "__main__":
    sys.exit(main())
