"""Bad input in a queue, and payloads that try to name code: each is refused and recorded with a readable
reason, the worker keeps running (no child dies), and valid tasks pushed after the garbage all run."""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.faults import driver
from tests.faults.app import build
from tests.workers import StartWorker
from wakaq import _wakaq

pytestmark = pytest.mark.timeout(90)


@dataclass
class Item:
    label: str
    element: bytes
    runs: bool  # a valid payload that must run; otherwise it must be recorded failed with `reason` in it
    reason: str = ""


def garbage(pwned: Path) -> list[Item]:
    rng = random.Random(1234)
    task = _wakaq.encode_task
    wakaq_json = {"name": "work", "args": [900_001], "kwargs": {}, "retry": 0}
    return [
        Item("random bytes", bytes([0x92]) + rng.randbytes(63), False, "undecodable payload"),
        *[Item(f"random bytes #{k}", rng.randbytes(rng.randint(1, 200)), False, "") for k in range(20)],
        Item("empty element", b"", False, "undecodable payload"),
        Item("lone redelivery mark", b"\xc1", False, "undecodable payload"),
        Item("redelivered garbage", b"\xc1\x01\xff\xfe", False, "undecodable payload"),
        Item("truncated msgpack", task("work", [900_002], {}, 0)[:-3], False, "undecodable payload"),
        Item("msgpack array", _wakaq.packb([1, 2, 3]), False, "undecodable payload"),
        Item("msgpack str", _wakaq.packb("work"), False, "undecodable payload"),
        Item("map without name", _wakaq.packb({"args": [1]}), False, "undecodable payload"),
        Item("name not a str", _wakaq.packb({"name": 5, "args": []}), False, "undecodable payload"),
        Item("args not an array", _wakaq.packb({"name": "work", "args": "xy"}), False, "undecodable payload"),
        Item("nested 100k deep", b"\x91" * 100_000 + b"\x00", False, "undecodable payload"),
        Item("array of 4G elements", b"\xdd\xff\xff\xff\xff", False, "undecodable payload"),
        Item("str of 4 GiB", b"\xdb\xff\xff\xff\xff" + b"x", False, "undecodable payload"),
        Item("WakaQ JSON payload", json.dumps(wakaq_json).encode(), True),
        Item("broken JSON", b'{"name": "work", "args": [', False, "undecodable payload"),
        Item("JSON list", b"{" + b"[" * 50_000, False, "undecodable payload"),
        Item("unknown task", task("no_such_task", [900_003], {}, 0), False, "unknown task 'no_such_task'"),
        Item("too many args", task("work", [900_004, 1.0, 2, 3], {}, 0), False, "TypeError"),
        Item("no args", task("work", [], {}, 0), False, "TypeError"),
        Item("unknown kwarg", task("work", [900_005], {"bogus": 1}, 0), False, "TypeError"),
        Item("wrong arg type", task("work", [900_006, "slow"], {}, 0), False, "TypeError"),
        # No code execution from data: a payload naming any callable that is not a registered task is refused.
        Item("os.system", task("os.system", [f"touch {pwned}"], {}, 0), False, "unknown task 'os.system'"),
        Item(
            "os.system (JSON)",
            json.dumps({"name": "os.system", "args": [f"touch {pwned}"]}).encode(),
            False,
            "unknown task 'os.system'",
        ),
        Item("builtins.eval", task("builtins.eval", [f"open({str(pwned)!r}, 'w')"], {}, 0), False, "unknown task"),
        Item(
            "JSON __class__ object",
            json.dumps({"name": "work", "args": [900_007, {"__class__": "os.system", "args": ["x"]}]}).encode(),
            False,
            "TypeError",
        ),
    ]


def test_garbage_in_a_queue(redis_url: str, client: redis.Redis, start_worker: StartWorker, tmp_path: Path) -> None:
    started = time.monotonic()
    pwned = tmp_path / "pwned"
    items = garbage(pwned)
    app = build(redis_url)
    worker = start_worker(url=redis_url, concurrency=2)
    children = set(worker.children())
    # garbage first, then valid tasks behind it: they must all run
    client.rpush("wakaq:faults", *[it.element for it in items])
    client.rpush("wakaq:bell:faults", "1")
    n = 200
    app.tasks["work"].delay_many(((i, 0.0), {}) for i in range(n))
    driver.wait_drained(client, lambda: driver.done_count(client, n + 1), timeout=45)

    records = driver.failure_records(client)
    by_payload: dict[bytes, list[str]] = {}
    for rec in records:
        by_payload.setdefault(rec["payload"], []).append(rec["reason"])
    acc = driver.account(client, range(n))
    done = len(acc.done)
    failed = 0
    problems = []
    ran = driver.runs(client)
    for it in items:
        payload = _wakaq.split_element(it.element)[1]
        reasons = by_payload.get(payload, [])
        if it.runs:
            done += 1 if ran.get(900_001) else 0
            if len(ran.get(900_001, [])) != 1 or reasons:
                problems.append(f"{it.label}: ran {ran.get(900_001)}, failed {reasons}")
            continue
        failed += len(reasons) == 1
        if len(reasons) != 1 or it.reason not in reasons[0]:
            problems.append(f"{it.label}: reasons {reasons}, expected one with {it.reason!r}")
        elif not (reasons[0].isprintable() and 0 < len(reasons[0]) < 1000):
            problems.append(f"{it.label}: unreadable reason {reasons[0]!r}")
    sent = n + len(items)
    driver.record(driver.Row("garbage in a queue", sent, done, len(acc.duplicates), failed, sent - done - failed))
    driver.RESULTS[-1].seconds = time.monotonic() - started
    assert problems == []
    assert acc.lost == set() and acc.duplicates == set()
    assert len(records) == len(items) - 1, "one record per bad item, nothing else"
    assert not pwned.exists(), "a payload ran code it named"
    assert set(worker.children()) == children and driver.died_children(worker.log_text()) == set()
    assert worker.proc.poll() is None


def test_no_pickle_or_eval_in_the_code() -> None:
    """No code execution from data: nothing in the package deserialises with pickle (or kin) or evaluates
    strings; task names are looked up in the app's registry only (the garbage test proves the refusal)."""
    root = Path(__file__).resolve().parents[2]
    sources = [*(root / "python" / "wakaq").rglob("*.py"), *(root / "rust" / "src").rglob("*.rs")]
    assert len(sources) > 20
    banned = [
        re.compile(r"\b(pickle|cPickle|marshal|shelve|dill|jsonpickle)\b"),
        re.compile(r"(?<![\w.-])(eval|exec|compile)\s*\("),
        re.compile(r"__import__\(\s*[^\s\"']"),  # __import__ of a computed name
    ]
    hits = [
        f"{p.relative_to(root)}:{n}: {line.strip()}"
        for p in sources
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if any(b.search(line) for b in banned)
    ]
    assert hits == []
