"""The admin commands, run as real subprocesses (`python -m wakaq ...`) against the private Redis."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis

from tests.conftest import ROOT
from tests.keyspace import KEYS
from tests.redis_server import free_port
from wakaq import WakaQ
from wakaq.cli import import_app
from wakaq.constants import EXIT_UNAVAILABLE, EXIT_USAGE
from wakaq.exceptions import AppImportError

APP = "tests.apps.cli_app.app"


def wakaq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wakaq", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def ok_json(*args: str) -> Any:
    result = wakaq(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


def one_line_error(result: subprocess.CompletedProcess[str], prog: str) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]


def payload(name: str, *args: Any) -> bytes:
    return msgpack.packb({"name": name, "args": list(args), "kwargs": {}, "retry": 0})


def failure_record(queue: str, body: bytes, reason: str = "ValueError: boom") -> bytes:
    """The record finish.lua writes (see rust/src/broker/lua/lib.lua)."""
    record = {
        "queue": queue,
        "payload": body,
        "reason": reason,
        "traceback": "Traceback ...",
        "time_ms": 1_700_000_000_123,
        "worker": "host:1:abc/42",
        "deliveries": 1,
    }
    return msgpack.packb(record, use_bin_type=True)


# ---- import_app ---------------------------------------------------------------------------------------------


def test_import_app_accepts_dots_and_colon() -> None:
    first = import_app(APP)
    assert isinstance(first, WakaQ)
    assert import_app("tests.apps.cli_app:app") is first


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.apps.nope.app", "no module named 'tests.apps.nope'"),
        ("nope_pkg.mod.app", "no module named 'nope_pkg'"),
        ("tests.apps.cli_app.nope", "'tests.apps.cli_app' has no attribute 'nope'"),
        ("tests.apps.cli_app:app.nope", "has no attribute 'app.nope'"),
        ("tests.apps.cli_app.not_an_app", "is a dict, not a WakaQ instance"),
        ("tests.apps.broken_app.app", "importing 'tests.apps.broken_app' failed: WakaQError: hard_timeout (5s)"),
        ("tests.apps.missing_dep_app.app", "No module named 'wakaq_no_such_dependency'"),
        ("justaname", "expected package.module.attribute"),
        ("pkg.mod:", "expected package.module.attribute"),
    ],
)
def test_import_app_errors(path: str, message: str) -> None:
    with pytest.raises(AppImportError) as info:
        import_app(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# ---- exit codes and one-line errors -------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["info", "worker", "scheduler", "purge", "failed"])
def test_bad_app_is_one_line_and_exit_2(command: str) -> None:
    extra = {"purge": ["--queue", "default"], "failed": ["list"]}.get(command, [])
    result = wakaq(command, "--app", "tests.apps.cli_app.not_an_app", *extra)
    assert result.returncode == EXIT_USAGE
    assert "not a WakaQ instance" in one_line_error(result, f"wakaq-{command}")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.apps.nope.app", "no module named"),
        ("tests.apps.cli_app.nope", "has no attribute 'nope'"),
        ("tests.apps.broken_app.app", "must be greater than soft_timeout"),
    ],
)
def test_bad_app_paths(path: str, message: str) -> None:
    result = wakaq("info", "--app", path)
    assert result.returncode == EXIT_USAGE
    assert message in one_line_error(result, "wakaq-info")


def test_unknown_command() -> None:
    result = wakaq("frobnicate")
    assert result.returncode == EXIT_USAGE
    assert "usage: python -m wakaq" in one_line_error(result, "wakaq")


def test_unreachable_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAKAQ_UNREACHABLE_URL", f"redis://:secret@127.0.0.1:{free_port()}/0")
    for args in (["info"], ["purge", "--queue", "default"], ["failed", "list"], ["pause", "default"]):
        started = time.monotonic()
        result = wakaq(args[0], "--app", "tests.apps.unreachable_app.app", *args[1:])
        assert result.returncode == EXIT_UNAVAILABLE
        line = one_line_error(result, f"wakaq-{args[0]}")
        assert "cannot reach Redis at redis://:***@127.0.0.1:" in line
        assert "secret" not in line
        assert time.monotonic() - started < 20


# ---- wakaq-info -----------------------------------------------------------------------------------------------


WAKAQ_QUEUE_FIELDS = {"name", "priority", "broker_key", "broker_eta_key", "pending_tasks", "pending_eta_tasks"}


def test_info_empty_has_wakaqs_shape(redis_url: str) -> None:
    """WakaQ prints {"queues": {NAME: {...}}, "workers": int}: scripts do info["workers"] == 0 and
    info["queues"]["default"]["pending_tasks"]."""
    out = ok_json("info", "--app", APP)
    assert out["workers"] == 0
    assert isinstance(out["workers"], int) and not isinstance(out["workers"], bool)
    assert out["daemons"] == []
    assert isinstance(out["queues"], dict)
    assert list(out["queues"]) == ["high", "low", "default"]
    assert out["queues"]["default"]["pending_tasks"] == 0
    for name, queue in out["queues"].items():
        assert WAKAQ_QUEUE_FIELDS <= set(queue), name
        assert queue["name"] == name
        assert all(isinstance(queue[k], int) for k in ("priority", "pending_tasks", "pending_eta_tasks"))
        assert all(isinstance(queue[k], str) for k in ("broker_key", "broker_eta_key"))
    assert out["queues"]["high"] == {
        "name": "high",
        "priority": 0,
        "broker_key": KEYS.queue("high"),
        "broker_eta_key": KEYS.eta("high"),
        "pending_tasks": 0,
        "pending_eta_tasks": 0,
        "inflight_tasks": 0,
        "failed_tasks": 0,
        "paused": False,
        "counters": {"started": 0, "done": 0, "failed": 0, "cancelled": 0, "retried": 0},
    }
    assert out["queues"]["default"]["priority"] == 6


def test_info_counts(rclient: redis.Redis) -> None:
    rclient.rpush(KEYS.queue("default"), payload("add", 1, 2), payload("add", 3, 4))
    rclient.rpush(KEYS.queue("high"), payload("urgent"))
    rclient.zadd(KEYS.eta("low"), {payload("add", 5, 6): time.time() + 60, payload("add", 7, 8): time.time() + 90})
    rclient.lpush(KEYS.failed("default"), failure_record("default", payload("add", 0, 0)))
    rclient.sadd(KEYS.daemons, "live:1:aa", "dead:2:bb")
    rclient.set(KEYS.heartbeat("live:1:aa"), json.dumps({"host": "live", "pid": 1, "children": 4}), px=60_000)
    rclient.hset(KEYS.inflight("live:1:aa"), mapping={"10:1": b"high\n" + payload("urgent"), "11:1": b"low\nx"})
    rclient.hset(KEYS.inflight("dead:2:bb"), "12:1", b"high\n\xc1\x01" + payload("urgent"))
    out = ok_json("info", "--app", APP)
    counts = {
        q["name"]: (q["pending_tasks"], q["pending_eta_tasks"], q["inflight_tasks"], q["failed_tasks"])
        for q in out["queues"].values()
    }
    assert counts == {"high": (1, 0, 2, 0), "low": (0, 2, 1, 0), "default": (2, 0, 0, 1)}
    assert out["workers"] == 1
    daemons = {d["id"]: d for d in out["daemons"]}
    assert set(daemons) == {"live:1:aa", "dead:2:bb"}
    assert daemons["live:1:aa"]["alive"] is True
    assert (daemons["live:1:aa"]["host"], daemons["live:1:aa"]["pid"]) == ("live", 1)
    assert daemons["dead:2:bb"]["alive"] is False  # heartbeat gone, not reaped yet


def test_info_counts_after_delay(redis_url: str) -> None:
    import tests.apps.cli_app as module

    app = importlib.reload(module).app  # bound to this test's Redis
    add = app.tasks["add"]
    add.delay(1, 2)
    add.delay(1, 2, queue="high")
    add.delay(3, 4, eta=60)
    out = ok_json("info", "--app", APP)
    counts = {q["name"]: (q["pending_tasks"], q["pending_eta_tasks"]) for q in out["queues"].values()}
    assert counts == {"high": (1, 0), "low": (0, 0), "default": (1, 1)}


# ---- wakaq-purge ----------------------------------------------------------------------------------------------


def test_purge_prints_wakaqs_line(rclient: redis.Redis) -> None:
    """WakaQ prints `Purged N tasks from QUEUE`, N counting pending and eta tasks (scripts may parse it)."""
    rclient.rpush(KEYS.queue("default"), b"a", b"b", b"c")
    rclient.zadd(KEYS.eta("default"), {b"d": 1.0})
    rclient.rpush(KEYS.queue("high"), b"keep")
    result = wakaq("purge", "--app", APP, "--queue", "default")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Purged 4 tasks from default\n", "")
    assert rclient.exists(KEYS.queue("default"), KEYS.eta("default")) == 0
    assert rclient.lrange(KEYS.queue("high"), 0, -1) == [b"keep"]
    assert wakaq("purge", "--app", APP, "--queue", "default").stdout == "Purged 0 tasks from default\n"


def test_purge_json(rclient: redis.Redis) -> None:
    rclient.rpush(KEYS.queue("default"), b"a", b"b", b"c")
    rclient.zadd(KEYS.eta("default"), {b"d": 1.0})
    out = ok_json("purge", "--app", APP, "--queue", "default", "--json")
    assert out == {"queue": "default", "purged_tasks": 3, "purged_eta_tasks": 1}
    assert ok_json("purge", "--app", APP, "--queue", "default", "--json")["purged_tasks"] == 0


def test_purge_unknown_queue(redis_url: str) -> None:
    result = wakaq("purge", "--app", APP, "--queue", "nope")
    assert result.returncode == EXIT_USAGE
    assert "unknown queue 'nope'" in one_line_error(result, "wakaq-purge")


# ---- wakaq-pause, wakaq-resume -----------------------------------------------------------------------------------


def test_pause_and_resume_commands(rclient: redis.Redis) -> None:
    """The console scripts pause and resume a queue in Redis (the set every daemon's claim reads); wakaq-info shows
    it; pushes to a paused queue still land."""

    def run(script: str, queue: str) -> subprocess.CompletedProcess[str]:
        """The console script installed beside this interpreter (pyproject's [project.scripts])."""
        path = str(Path(sys.executable).parent / script)
        return subprocess.run([path, "--app", APP, queue], cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert (run("wakaq-pause", "low").stdout, rclient.smembers(KEYS.paused)) == ("Paused low\n", {b"low"})
    assert run("wakaq-pause", "low").stdout == "low was already paused\n"
    info = ok_json("info", "--app", APP)
    assert {n: q["paused"] for n, q in info["queues"].items()} == {"high": False, "low": True, "default": False}
    rclient.rpush(KEYS.queue("low"), payload("add", 1, 2))
    assert ok_json("info", "--app", APP)["queues"]["low"]["pending_tasks"] == 1
    assert run("wakaq-resume", "low").stdout == "Resumed low\n"
    assert rclient.smembers(KEYS.paused) == set()
    assert rclient.llen(KEYS.bell("low")) == 1, "a resume rings the queue's bell"
    assert run("wakaq-resume", "low").stdout == "low was already running\n"
    assert ok_json("pause", "--app", APP, "high", "--json") == {"queue": "high", "paused": True, "changed": True}
    assert ok_json("resume", "--app", APP, "high", "--json") == {"queue": "high", "paused": False, "changed": True}
    assert ok_json("info", "--app", APP)["queues"]["low"]["pending_tasks"] == 1


def test_pause_unknown_queue(redis_url: str, rclient: redis.Redis) -> None:
    result = wakaq("pause", "--app", APP, "nope")
    assert result.returncode == EXIT_USAGE
    assert "unknown queue 'nope'" in one_line_error(result, "wakaq-pause")
    assert rclient.exists(KEYS.paused) == 0


# ---- wakaq-failed ---------------------------------------------------------------------------------------------


def test_failed_list(rclient: redis.Redis) -> None:
    rclient.lpush(KEYS.failed("default"), failure_record("default", payload("add", 1, 2)))
    rclient.lpush(KEYS.failed("high"), failure_record("high", b"\x00garbage", reason="undecodable"))
    out = ok_json("failed", "--app", APP, "list")
    assert [(r["queue"], r["name"], r.get("args")) for r in out] == [("high", None, None), ("default", "add", [1, 2])]
    assert out[1]["reason"] == "ValueError: boom"
    assert out[1]["time"] == "2023-11-14T22:13:20.123000+00:00"
    assert out[1]["worker"] == "host:1:abc/42"
    assert "payload_error" in out[0]
    only = ok_json("failed", "--app", APP, "--queue", "default", "list")
    assert [r["name"] for r in only] == ["add"]


def test_failed_requeue(rclient: redis.Redis) -> None:
    for i in range(3):
        rclient.lpush(KEYS.failed("default"), failure_record("default", payload("add", i, i)))
    rclient.lpush(KEYS.failed("broadcast"), failure_record("broadcast", payload("add", 9, 9)))
    out = ok_json("failed", "--app", APP, "requeue")
    assert out == {"requeued": 3, "skipped": 1}
    assert rclient.lrange(KEYS.queue("default"), 0, -1) == [payload("add", i, i) for i in range(3)]
    assert rclient.llen(KEYS.failed("default")) == 0
    assert rclient.llen(KEYS.failed("broadcast")) == 1
    assert rclient.llen(KEYS.bell("default")) == 1


def test_failed_drop(rclient: redis.Redis) -> None:
    rclient.lpush(KEYS.failed("default"), b"r1", b"r2")
    rclient.lpush(KEYS.failed("high"), b"r3")
    assert ok_json("failed", "--app", APP, "--queue", "high", "drop") == {"dropped": 1}
    assert ok_json("failed", "--app", APP, "drop") == {"dropped": 2}
    assert rclient.exists(KEYS.failed("default"), KEYS.failed("high")) == 0


def test_failed_unknown_queue(redis_url: str) -> None:
    result = wakaq("failed", "--app", APP, "--queue", "nope", "list")
    assert result.returncode == EXIT_USAGE
    assert "unknown queue 'nope'" in one_line_error(result, "wakaq-failed")
