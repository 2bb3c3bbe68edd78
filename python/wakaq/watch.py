"""`wakaq-info --watch`: a terminal view redrawn every second from `wakaq.stats.snapshot`.

Plain ANSI (home, clear, redraw; no curses, no colours), so it reads the same over ssh, in tmux and in a log.
Rates are the difference of the monotonic counters between two snapshots over the Redis clock's difference.
Ctrl-C (SIGINT) ends it with exit code 0; a Redis outage shows as a line at the top until Redis is back.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from wakaq.stats import snapshot

if TYPE_CHECKING:
    import redis

    from wakaq.app import WakaQ

CLEAR = "\x1b[H\x1b[2J"


def watch(app: WakaQ, r: redis.Redis, interval: float = 1.0, out: TextIO | None = None) -> int:
    """Redraw until interrupted; returns the exit code (0)."""
    import redis as redis_py

    stream = out or sys.stdout
    previous: dict[str, Any] | None = None
    try:
        while True:
            try:
                snap = snapshot(app, r)
            except redis_py.RedisError as e:  # an outage: show it, keep watching until Redis is back
                _draw(stream, f"wakaq-info --watch: redis error: {str(e).splitlines()[0] if str(e) else e!r}\n")
            else:
                _draw(stream, render(snap, previous))
                previous = snap
            time.sleep(interval)
    except KeyboardInterrupt:
        stream.write("\n")
        stream.flush()
        return 0
    except BrokenPipeError:  # NOTE: `wakaq-info --watch | head`: the reader left
        return 0


def _draw(stream: TextIO, text: str) -> None:
    stream.write(CLEAR + text)
    stream.flush()


def render(snap: dict[str, Any], previous: dict[str, Any] | None) -> str:
    """One screen: queues (depths and rates), then daemons and their children."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snap["time"]))
    alive = sum(1 for d in snap["daemons"] if d["alive"])
    lines = [f"wakaq  {stamp}  daemons alive {alive}/{len(snap['daemons'])}   (Ctrl-C to quit)", ""]
    lines.append(f"{'queue':<20} {'pending':>9} {'eta':>9} {'inflight':>9} {'failed':>9} {'done/s':>9} {'failed/s':>9}")
    for name, q in snap["queues"].items():
        done_rate, failed_rate = _rates(name, snap, previous)
        label = f"{name[:13]} PAUSED" if q.get("paused") else name[:20]
        lines.append(
            f"{label:<20} {q['pending_tasks']:>9} {q['pending_eta_tasks']:>9} {q['inflight_tasks']:>9} "
            f"{q['failed_tasks']:>9} {done_rate:>9} {failed_rate:>9}"
        )
    lines.append("")
    lines.append(f"{'daemon':<36} {'state':<6} {'done':>9} {'failed':>9} {'rss MiB':>8}  children (pid: task, seconds)")
    for d in snap["daemons"]:
        state = "alive" if d["alive"] else "DEAD"
        rss = "-" if d["rss_bytes"] is None else f"{d['rss_bytes'] / 2**20:.0f}"
        children = ", ".join(_child(c) for c in d["children"]) or "-"
        lines.append(
            f"{str(d['id'])[:36]:<36} {state:<6} {d['tasks_done']:>9} {d['tasks_failed']:>9} {rss:>8}  {children}"
        )
    return "\n".join(lines) + "\n"


def _rates(name: str, snap: dict[str, Any], previous: dict[str, Any] | None) -> tuple[str, str]:
    if previous is None or name not in previous["queues"]:
        return "-", "-"
    elapsed = snap["time"] - previous["time"]
    if elapsed <= 0:
        return "-", "-"
    now, before = snap["queues"][name]["counters"], previous["queues"][name]["counters"]
    return (
        f"{max(0, now['done'] - before['done']) / elapsed:.1f}",
        f"{max(0, now['failed'] - before['failed']) / elapsed:.1f}",
    )


def _child(c: dict[str, Any]) -> str:
    if c["task"]:
        return f"{c['pid']}: {c['task']} {c['running_for'] or 0:.1f}s"
    return f"{c['pid']}: {'busy' if c['busy'] else 'idle'}"
