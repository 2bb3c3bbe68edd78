"""`wakaq-web` over plain HTTP: the bind rules, basic auth, CSRF, headers, bounded paging, actions, schedules."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.keyspace import KEYS, single_redis_only
from tests.webserver import WEB_APP, WebServer, request
from tests.workers import StartScheduler, StartWorker, events, wait_until

STATIC = Path(__file__).resolve().parent.parent / "python" / "wakaq" / "web" / "static"


def token_of(url: str, headers: dict[str, str] | None = None) -> str:
    status, _, body = request(url, headers=headers)
    assert status == 200
    found = re.search(rb'<meta name="csrf-token" content="([^"]+)">', body)
    assert found
    return found.group(1).decode()


def post(web: WebServer, path: str, payload: Any, **headers: str) -> tuple[int, Any]:
    status, _, body = request(web.url + path, "POST", json.dumps(payload).encode(), headers)
    return status, json.loads(body)


def good_headers(web: WebServer) -> dict[str, str]:
    return {"X-CSRF-Token": token_of(web.url), "Origin": web.url.rstrip("/"), "Content-Type": "application/json"}


def get(web: WebServer, path: str) -> Any:
    status, _, body = request(web.url + path)
    assert status == 200, body
    return json.loads(body)


def fake_failed(r: redis.Redis, queue: str, n: int, name: str = "flaky", batch: int = 5000) -> None:
    """n failure records as the broker writes them (lib.lua `record`), pushed in pipelined batches."""
    from wakaq._wakaq import encode_task, packb

    tb = 'Traceback (most recent call last):\n  File "app.py", line 1, in flaky\nValueError: no\n'
    for start in range(0, n, batch):
        pipe: Any = r.pipeline(transaction=False)
        records = [
            packb(
                {
                    "queue": queue,
                    "payload": encode_task(f"{name}{i % 7}", [i, "x" * 40], {"k": i}, 0),
                    "reason": f"ValueError: failure {i}",
                    "traceback": tb,
                    "time_ms": 1_700_000_000_000 + i,
                    "worker": "host:1:abc",
                    "deliveries": 1,
                }
            )
            for i in range(start, min(n, start + batch))
        ]
        pipe.lpush(KEYS.failed(queue), *records)
        pipe.execute()


# ---- binding and authentication ---------------------------------------------------------------------------------


def _run_web(redis_url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "wakaq", "web", "--app", WEB_APP, "--port", "0", *args],
        env=dict(os.environ, WAKAQ_TEST_URL=redis_url, **(env or {})),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_refuses_a_non_loopback_bind_without_password_or_no_auth(redis_url: str):
    result = _run_web(redis_url, "--host", "0.0.0.0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wakaq-web: error: binding '0.0.0.0' (not a loopback address)")
    assert "--password" in lines[0] and "--no-auth" in lines[0]
    both = _run_web(redis_url, "--host", "0.0.0.0", "--no-auth", env={"WAKAQ_WEB_PASSWORD": "x"})
    assert both.returncode == 2 and "exclude each other" in both.stderr


def test_no_auth_allows_a_non_loopback_bind(tmp_path: Path, redis_url: str):
    server = WebServer(tmp_path, redis_url, "--host", "0.0.0.0", "--no-auth").wait_ready()
    try:
        assert "no authentication" in server.output()
        assert request(server.url + "api/overview")[0] == 200
    finally:
        server.stop()
    assert server.proc.returncode == 0  # SIGTERM stops it cleanly


def test_basic_auth_on_a_non_loopback_bind(tmp_path: Path, redis_url: str):
    server = WebServer(tmp_path, redis_url, "--host", "0.0.0.0", "--password", "s3cret").wait_ready()
    try:
        for path in ("", "api/overview", "api/failed", "metrics", "static/app.js"):
            status, headers, _ = request(server.url + path)
            assert status == 401 and headers["WWW-Authenticate"].startswith('Basic realm="wakaq"'), path
        wrong = base64.b64encode(b"ops:guess").decode()
        assert request(server.url, headers={"Authorization": f"Basic {wrong}"})[0] == 401
        assert request(server.url, headers={"Authorization": "Basic !!!"})[0] == 401
        right = {"Authorization": "Basic " + base64.b64encode(b"ops:s3cret").decode()}
        assert request(server.url + "api/overview", headers=right)[0] == 200
        # the password also guards POSTs, before CSRF is even looked at
        status, _, _ = request(server.url + "api/failed/drop", "POST", b"{}", {"Content-Type": "application/json"})
        assert status == 401
    finally:
        server.stop()


def test_dns_rebinding_guard_on_loopback_without_password(web: WebServer):
    assert request(web.url + "api/overview", headers={"Host": "attacker.example:80"})[0] == 403
    assert request(web.url + "api/overview", headers={"Host": "localhost"})[0] == 200


# ---- CSRF, methods, headers ---------------------------------------------------------------------------------------


def test_cross_site_posts_are_refused(web: WebServer, rclient: redis.Redis):
    rclient.lpush(KEYS.failed("default"), b"\xc1kept")
    drop_all = {"queue": "default", "all": True}
    ok = good_headers(web)
    refused = [
        {k: v for k, v in ok.items() if k != "X-CSRF-Token"},  # no token
        {**ok, "X-CSRF-Token": "wrong"},
        {**ok, "Origin": "http://attacker.example"},
        {**ok, "Origin": "null"},
        {**ok, "Origin": web.url.rstrip("/") + "0"},  # another port of the same host
        {**ok, "Origin": "http://127.0.0.1.attacker.example"},
        {k: v for k, v in ok.items() if k != "Origin"},  # neither Origin nor Referer
        {**{k: v for k, v in ok.items() if k != "Origin"}, "Referer": "http://attacker.example/x"},
    ]
    for headers in refused:
        status, body = post(web, "api/failed/drop", drop_all, **headers)
        assert status == 403, (headers, body)
    assert post(web, "api/failed/drop", drop_all, **{**ok, "Content-Type": "text/plain"})[0] == 415
    assert request(web.url + "api/failed/drop")[0] == 405  # GET on an action
    assert request(web.url + "api/overview", "POST", b"{}", ok)[0] == 405
    assert rclient.llen(KEYS.failed("default")) == 1
    behind_tls_proxy = {**ok, "Origin": "https://" + web.url.split("://", 1)[1].rstrip("/")}
    assert post(web, "api/failed/requeue", {"queue": "high", "all": True}, **behind_tls_proxy)[0] == 200
    referer = {**{k: v for k, v in ok.items() if k != "Origin"}, "Referer": web.url + "#failed"}
    assert post(web, "api/failed/drop", drop_all, **referer) == (200, {"dropped": 1})
    assert rclient.llen(KEYS.failed("default")) == 0


def test_pause_and_resume_actions(web: WebServer, rclient: redis.Redis):
    """POST /api/queues/pause|resume: guarded like the other actions (CSRF token), a queue of the app only; the
    overview and /metrics show the state."""
    ok = good_headers(web)
    no_token = {k: v for k, v in ok.items() if k != "X-CSRF-Token"}
    assert post(web, "api/queues/pause", {"queue": "default"}, **no_token)[0] == 403
    assert request(web.url + "api/queues/pause")[0] == 405
    assert post(web, "api/queues/pause", {"queue": "nope"}, **ok)[0] == 404
    assert post(web, "api/queues/pause", {"queue": ["default"]}, **ok)[0] == 404
    assert rclient.exists(KEYS.paused) == 0
    assert post(web, "api/queues/pause", {"queue": "default"}, **ok) == (
        200,
        {"queue": "default", "paused": True, "changed": True},
    )
    assert rclient.smembers(KEYS.paused) == {b"default"}
    overview = json.loads(request(web.url + "api/overview")[2])
    assert {n: q["paused"] for n, q in overview["latest"]["queues"].items()} == {"high": False, "default": True}
    assert 'wakaq_queue_paused{queue="default"} 1' in request(web.url + "metrics")[2].decode()
    assert post(web, "api/queues/resume", {"queue": "default"}, **ok)[1]["changed"] is True
    assert post(web, "api/queues/resume", {"queue": "default"}, **ok)[1]["changed"] is False
    assert rclient.smembers(KEYS.paused) == set()


def test_security_headers_everywhere(web: WebServer):
    for path in ("", "api/overview", "static/app.js", "nope"):
        _, headers, _ = request(web.url + path)
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_page_script_never_parses_data_as_html():
    for script in ("app.js", "workflows.js"):
        source = (STATIC / script).read_text()
        code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("//"))
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in code, (script, sink)
    html = (STATIC / "index.html").read_text()
    # the CSP forbids inline code, so the page must have none: no inline script, handler or style attribute
    # NOTE: workflows.js registers its page before app.js builds the pages
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="/static/workflows.js" defer>',
        '<script src="/static/app.js" defer>',
    ]
    assert not re.search(r"\son[a-z]+\s*=", html) and " style=" not in html


# ---- data ---------------------------------------------------------------------------------------------------------


@single_redis_only  # MONITOR sees one node only
def test_paging_and_search_stay_bounded_with_100k_failed(web: WebServer, rclient: redis.Redis):
    fake_failed(rclient, "default", 100_000)
    fake_failed(rclient, "default", 1, name="needle")  # the newest record, at index 0
    commands: list[list[str]] = []
    stop = threading.Event()

    def monitor() -> None:
        with rclient.monitor() as m:
            for command in m.listen():
                if stop.is_set():
                    return
                commands.append(command["command"].split())

    thread = threading.Thread(target=monitor, daemon=True)
    thread.start()
    time.sleep(0.3)
    first = get(web, "api/failed?queue=default&limit=50")
    deep = get(web, "api/failed?queue=default&offset=99990&limit=50")
    found = get(web, "api/failed?queue=default&q=needle")
    more = get(web, f"api/failed?queue=default&q=needle&offset={found['next']}")
    huge = get(web, "api/failed?queue=default&limit=100000000")
    stop.set()
    rclient.ping()  # an event for the monitor to notice the stop
    thread.join(5)
    assert first["total"] == 100_001 and len(first["items"]) == 50 and first["items"][0]["name"] == "needle0"
    assert [i["index"] for i in deep["items"]] == list(range(99990, 100_001))
    assert [i["name"] for i in found["items"]] == ["needle0"] and found["next"] == 20_000 and found["scanned"] == 20_000
    assert more["items"] == [] and more["next"] == 40_000
    assert len(huge["items"]) == 200  # MAX_LIMIT
    ranges = [c for c in commands if c and c[0].strip('"').upper() in ("LRANGE", "ZRANGE")]
    assert ranges, commands[:20]
    for c in ranges:
        start, stop_at = int(c[2].strip('"')), int(c[3].strip('"'))
        assert start >= 0 and stop_at >= 0 and stop_at - start < 1000, c


def test_requeue_one_and_drop_one_find_their_record_after_it_moved(web: WebServer, rclient: redis.Redis):
    fake_failed(rclient, "default", 30)
    page = get(web, "api/failed?queue=default&limit=5")
    target = page["items"][2]
    fake_failed(rclient, "default", 10, name="newer")  # the target moves from index 2 to 12
    ok = good_headers(web)
    body = {"queue": "default", "id": target["id"], "index": target["index"]}
    assert post(web, "api/failed/requeue", body, **ok) == (200, {"requeued": 1})
    assert rclient.llen(KEYS.failed("default")) == 39
    from wakaq._wakaq import decode_task

    assert decode_task(rclient.lpop(KEYS.queue("default")))[0] == target["name"]
    assert post(web, "api/failed/requeue", body, **ok)[0] == 404  # gone now
    victim = get(web, "api/failed?queue=default&limit=1")["items"][0]
    drop = {"queue": "default", "id": victim["id"], "index": victim["index"]}
    assert post(web, "api/failed/drop", drop, **ok) == (200, {"dropped": 1})
    assert rclient.llen(KEYS.failed("default")) == 38


def test_requeue_all_in_chunks_leaves_what_cannot_be_requeued(web: WebServer, rclient: redis.Redis):
    fake_failed(rclient, "default", 1200)
    rclient.rpush(KEYS.failed("default"), b"\xc1not a record")  # the oldest: cannot be requeued, stays
    result = post(web, "api/failed/requeue", {"queue": "default", "all": True}, **good_headers(web))
    assert result == (200, {"requeued": 1200, "skipped": 1})
    assert rclient.llen(KEYS.queue("default")) == 1200 and rclient.lrange(KEYS.failed("default"), 0, -1) == [
        b"\xc1not a record"
    ]


def test_requeued_task_runs_on_a_worker(web: WebServer, start_worker: StartWorker, rclient: redis.Redis):
    from tests.apps import web_app

    worker = start_worker(WEB_APP)
    try:
        web_app.flaky.delay("again")
        wait_until(lambda: rclient.llen(KEYS.failed("default")) == 1, 15, what="the failure")
        item = get(web, "api/failed")["items"][0]
        assert item["name"] == "flaky" and "ValueError" in item["traceback"] and item["args"] == "['again']"
        rclient.set("fixed", 1)
        body = {"queue": "default", "id": item["id"], "index": item["index"]}
        assert post(web, "api/failed/requeue", body, **good_headers(web))[0] == 200
        wait_until(lambda: events(rclient, "flaky"), 15, what="the requeued task to run")
    finally:
        worker.stop()


# ---- workflows ------------------------------------------------------------------------------------------------------


def test_workflows_api_lists_recent_ones_and_each_steps_state(
    web: WebServer, start_worker: StartWorker, rclient: redis.Redis
):
    from tests.apps import web_app
    from wakaq import TaskFailed, group
    from wakaq.admin import inspect

    start_worker(WEB_APP)
    chained = (web_app.wf_add.s(1, 2) | web_app.wf_add.s(10)).delay()
    assert chained.result(timeout=20) == 13
    members = [web_app.wf_add.s(1, 1), web_app.wf_fail.s("<b>bad</b>"), web_app.wf_add.s(2, 2)]
    grouped = group(members).then(web_app.wf_collect.s()).delay()
    with pytest.raises(TaskFailed):
        grouped.result(timeout=20)

    listed = get(web, "api/workflows")
    assert [w["id"] for w in listed["items"]] == [grouped.id, chained.id]  # newest first
    assert listed["counts"] == {"recent": 2, "done": 1, "failed": 1} and listed["total"] == 2
    failed, done = listed["items"]
    assert (failed["status"], failed["tasks"], failed["nodes"]) == ("failed", ["wf_add", "wf_fail", "wf_collect"], 6)
    assert failed["error_type"] == "ValueError" and failed["error"] == "wf_fail got <b>bad</b>"
    assert (done["status"], done["tasks"], done["error"]) == ("done", ["wf_add"], None)
    assert [w["id"] for w in get(web, "api/workflows?status=done")["items"]] == [chained.id]
    assert get(web, "api/workflows?limit=1&offset=1")["items"][0]["id"] == chained.id

    detail = get(web, f"api/workflow?id={grouped.id}")
    assert detail["status"] == "failed" and detail["failed_node"] == 3 and detail["total"] == 4
    assert [(m["task"], m["state"], m["in"], m["position"]) for m in detail["members"]] == [
        ("wf_add", "done", "group", 1),
        ("wf_fail", "failed", "group", 2),
        ("wf_add", "done", "group", 3),
        ("wf_collect", "waiting", "chain", 2),  # the callback never starts
    ]
    assert [m["result"] for m in detail["members"]] == ["2", None, "4", None]
    assert detail["members"][1]["error"] == "wf_fail got <b>bad</b>"
    assert detail["counts"] == {"done": 2, "failed": 1, "waiting": 1}
    assert 0 < detail["expires_in"] <= web_app.wakaq.result_ttl
    page = get(web, f"api/workflow?id={chained.id}&offset=1&limit=1")
    assert page["result"] == "13" and [m["state"] for m in page["members"]] == ["done"] and page["total"] == 2
    assert page["members"][0]["result"] == "13" and page["members"][0]["in"] == "chain"

    for bad in ("w" + "0" * 32, "nope", ""):
        status, _, body = request(web.url + f"api/workflow?id={bad}")
        assert status == 404 and json.loads(body)["error"], bad
    # wakaq-info's `workflows`: the same counts
    assert inspect(web_app.wakaq, rclient)["workflows"] == {"recent": 2, "done": 1, "failed": 1}


def test_cancel_workflow_needs_the_csrf_token_and_stops_it(web: WebServer, rclient: redis.Redis):
    from tests.apps import web_app
    from wakaq import chain

    # no worker: the first step stays queued
    handle = chain(web_app.wf_add.s(1, 2), web_app.wf_add.s(3)).delay()
    assert rclient.llen(KEYS.queue("default")) == 1
    assert [m["state"] for m in get(web, f"api/workflow?id={handle.id}")["members"]] == ["pending", "waiting"]
    body = {"id": handle.id}
    assert post(web, "api/workflow/cancel", body, **{"Content-Type": "application/json"})[0] == 403
    assert handle.status() == "running"
    assert post(web, "api/workflow/cancel", {"id": "nope"}, **good_headers(web))[0] == 400
    assert post(web, "api/workflow/cancel", body, **good_headers(web)) == (200, {"cancelled": handle.id})
    assert handle.status() == "cancelled" and rclient.llen(KEYS.queue("default")) == 0
    status, again = post(web, "api/workflow/cancel", body, **good_headers(web))
    assert status == 409 and again["error"] == f"workflow {handle.id} is not running (cancelled)"
    states = [m["state"] for m in get(web, f"api/workflow?id={handle.id}")["members"]]
    assert states == ["cancelled", "waiting"]


def test_the_index_of_recent_workflows_is_bounded_and_skips_expired_ones(web: WebServer, rclient: redis.Redis):
    from tests.apps import web_app
    from tests.campaign.layout import WORKFLOWS_KEEP
    from wakaq import chain

    short = chain(web_app.wf_add.s(0, 0)).delay(ttl=1)
    for i in range(WORKFLOWS_KEEP + 5):
        chain(web_app.wf_add.s(i, 1)).delay(ttl=60)
    key = KEYS.workflows_recent
    assert rclient.zcard(key) == WORKFLOWS_KEEP  # the start script trims the oldest, `short` among them
    assert rclient.zscore(key, short.id) is None
    assert 0 < rclient.pttl(key) <= 60_000  # it expires with the longest-lived workflow it names
    newest = chain(web_app.wf_add.s(5, 5)).delay(ttl=1)
    assert 0 < rclient.pttl(key) <= 60_000  # a shorter-lived one does not shorten it
    listed = get(web, "api/workflows?limit=500")
    assert listed["counts"] == {"recent": WORKFLOWS_KEEP, "running": WORKFLOWS_KEEP}
    assert len(listed["items"]) == 200 and listed["items"][0]["id"] == newest.id  # a page is at most 200
    wait_until(lambda: not rclient.exists(KEYS.workflow(newest.id)), 5, 0.1, "the 1 s workflow to expire")
    listed = get(web, "api/workflows?limit=1")
    assert listed["counts"]["recent"] == WORKFLOWS_KEEP - 1 and listed["items"][0]["id"] != newest.id


def test_eta_page_next_due_first(web: WebServer, rclient: redis.Redis):
    from wakaq._wakaq import encode_task

    now = time.time()
    rclient.zadd(KEYS.eta("default"), {encode_task("later", [i], {}, 0): now + 100 - i for i in range(100)})
    page = get(web, "api/eta?queue=default&limit=10")
    assert page["total"] == 100 and [i["args"] for i in page["items"]] == [f"[{99 - i}]" for i in range(10)]
    assert page["items"][0]["due"] == pytest.approx(now + 1, abs=0.01)
    assert get(web, "api/eta?queue=default&q=LATER&offset=95")["items"][0]["index"] == 95
    assert request(web.url + "api/eta?queue=nope")[0] == 404


def test_schedules_show_last_fire_and_the_scheduler_that_fired(web: WebServer, start_scheduler: StartScheduler):
    scheduler = start_scheduler(WEB_APP)
    fired = wait_until(lambda: get(web, "api/schedules")["schedules"][0]["fired_by"], 15, 0.1, "a fire")
    entry = get(web, "api/schedules")["schedules"][0]
    assert entry["cron"] == "* * * * * */2" and entry["task"] == "tick" and entry["queue"] == "default"
    assert fired.split(":")[1] == str(scheduler.pid)
    assert entry["last_fire"] <= time.time() < entry["next_fire"] <= entry["last_fire"] + 4


def test_metrics_endpoint_counts_tasks_sent(web: WebServer, start_worker: StartWorker, rclient: redis.Redis):
    from prometheus_client.parser import text_string_to_metric_families

    from tests.apps import web_app

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, headers, body = request(web.url + "metrics")
        assert status == 200 and headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
        }

    worker = start_worker(WEB_APP)
    try:
        for i in range(7):
            web_app.quick.delay(i)
        done = ("wakaq_tasks_done_total", (("queue", "high"), ("task", "quick")))
        wait_until(lambda: samples().get(done) == 7, 15, 0.2, "7 done tasks in /metrics")
        assert samples()[("wakaq_daemons_alive", ())] == 1
    finally:
        worker.stop()


@single_redis_only
def test_redis_outage_is_an_error_reply_not_a_crash(tmp_path: Path, redis_url: str, redis_server: Any):
    server = WebServer(tmp_path, redis_url).wait_ready()
    try:
        client = redis.Redis.from_url(redis_url)
        client.config_set("requirepass", "now-locked")
        client.client_kill_filter(_type="normal", skipme=True)  # the dashboard must connect again, and fails
        try:
            status, _, body = request(server.url + "api/failed")
            assert status == 503 and json.loads(body)["error"].startswith("Redis: ")
            assert request(server.url)[0] == 200  # the page itself still loads
        finally:
            locked = redis.Redis.from_url(redis_url, password="now-locked")
            locked.config_set("requirepass", "")
            locked.close()
            client.close()
        assert request(server.url + "api/failed")[0] == 200
    finally:
        server.stop()


# ---- queue latency and the per-minute history -------------------------------------------------------------------


def test_queue_latency_grows_while_the_oldest_task_waits(
    web: WebServer, start_worker: StartWorker, rclient: redis.Redis
):
    from tests.apps import web_app

    start_worker(WEB_APP, concurrency=1)
    web_app.blocker.delay("busy")  # the only child is busy: what comes next waits
    wait_until(lambda: events(rclient, "blocker-start"), 15, what="the blocker running")
    sent = time.time()
    for i in range(3):
        web_app.blocker.delay(f"waiting{i}")

    def latency() -> float:
        q = get(web, "api/overview")["latest"]["queues"]["default"]
        return float(q["latency"] or 0.0) if q["pending"] == 3 else 0.0

    wait_until(lambda: latency() >= 3.0, 20, 0.2, what="a latency of 3 s for the waiting tasks")
    # NOTE: an estimate from the counters: never more than the real age plus a sample and a heartbeat
    assert latency() <= time.time() - sent + 3.5
    rclient.set("release", 1)
    wait_until(lambda: get(web, "api/overview")["latest"]["queues"]["default"]["latency"] == 0.0, 20, 0.2)


def test_per_minute_history_totals_since_and_bounds(web: WebServer, rclient: redis.Redis):
    from wakaq.web import minutes
    from wakaq.web.minutes import KEEP_DAYS

    app = _web_app()
    now = time.time()
    base = int(now // 60) - 30
    totals = {"high": [0, 0], "default": [0, 0]}
    for m in range(base, base + 30):  # 30 minutes: 10 done and 1 failed in each, then a reset by hand
        totals["high"][0] += 10
        totals["default"][1] += 1
        if m == base + 20:
            totals = {"high": [4, 0], "default": [0, 1]}
        minutes.record(
            app, rclient, m * 60 + 30, {q: {"counters": {"done": d, "failed": f}} for q, (d, f) in totals.items()}
        )
    got = get(web, f"api/history?since={(base + 10) * 60}")
    assert got["since"] == (base + 10) * 60  # counted from the sample before (the end of minute base+9)
    assert [p["t"] for p in got["points"]][:2] == [(base + 10) * 60, (base + 11) * 60]
    # minutes base+10 .. base+29: 20 minutes of 10 done / 1 failed, but at the reset (base+20) only 4 / 1 count
    assert got["done"] == 19 * 10 + 4 and got["failed"] == 20
    assert got["bucket_minutes"] == 1
    # bounded: one hash per day, at most 1,440 fields, expiring KEEP_DAYS after its day
    day = int(now // 86_400)
    ttl = rclient.ttl(KEYS.history(day))
    assert 0 < ttl <= (KEEP_DAYS + 1) * 86_400
    for key in rclient.scan_iter(match=KEYS.history("*")):
        assert rclient.hlen(key) <= 1440 and rclient.ttl(key) > 0


def _web_app() -> Any:
    from tests.apps import web_app

    return web_app.wakaq
