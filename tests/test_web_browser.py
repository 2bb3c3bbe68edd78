"""The dashboard in a real headless Chromium: real redis-server, real `wakaq-worker`, real `wakaq-web`."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.keyspace import KEYS
from tests.webserver import WebServer, console_errors
from tests.workers import StartWorker, Worker, events, wait_until

NO_VALUE = "\u2013"  # the page's en dash for "no value"
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(2)>'
APP = "tests.apps.web_app.wakaq"


@pytest.fixture
def worker(start_worker: StartWorker) -> Worker:
    """The dashboard's worker daemon, two children."""
    return start_worker(APP, concurrency=2)


def _text(driver: Any, css: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(driver.find_element("css selector", css).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def _cells(driver: Any, queue: str) -> dict[str, str]:
    return {
        name: _text(driver, f'#queues tr[data-queue="{queue}"] td.{name}')
        for name in ("pending", "eta", "inflight", "failed", "done-rate")
    }


def _no_alert(driver: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - the property raises when no dialog is open


def test_overview_shows_counts_while_tasks_run(browser: Any, web: WebServer, worker: Worker, rclient: redis.Redis):
    from tests.apps import web_app

    for i in range(5):
        web_app.blocker.delay(f"b{i}")
    browser.get(web.url + "#overview")
    want = {"pending": "3", "inflight": "2", "failed": "0"}
    wait_until(
        lambda: all(_cells(browser, "default")[k] == v for k, v in want.items()), 15, 0.1, "3 pending, 2 running"
    )
    rclient.set("release", 1)
    wait_until(lambda: len(events(rclient, "blocker-end")) == 5, 20, what="the 5 blockers to finish")
    wait_until(
        lambda: _cells(browser, "default")["pending"] == "0" and _cells(browser, "default")["inflight"] == "0", 10
    )
    # done/s comes from the daemons' counters (published with their heartbeats): non-zero while tasks finish
    for i in range(300):
        web_app.quick.delay(i)
    rate_shown = lambda: _text(browser, '#queues tr[data-queue="high"] td.done-rate') not in ("", "0.0")  # noqa: E731
    wait_until(rate_shown, 15, 0.1, "a done/s rate for queue high")
    # NOTE: the chart is drawn from the same polls: the canvas is no longer blank
    drawn = browser.execute_script(
        "const c = document.getElementById('chart-pending');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;"
    )
    assert drawn > 100
    _no_alert(browser)


def test_failed_task_traceback_requeue_and_xss(browser: Any, web: WebServer, worker: Worker, rclient: redis.Redis):
    from tests.apps import web_app

    web_app.flaky.delay(XSS_SCRIPT, XSS_IMG)
    wait_until(lambda: rclient.llen("wakaq:failed:default") == 1, 15, what="the failure record")
    console_errors(browser)  # forget earlier tests' messages
    browser.get(web.url + "#failed")
    wait_until(lambda: _text(browser, "#failed-list .record .name") == "flaky", 10, 0.1, "the failed task on the page")
    record = browser.find_element("css selector", "#failed-list .record")
    assert XSS_SCRIPT in record.find_element("css selector", ".args-value").text
    assert XSS_IMG in record.find_element("css selector", ".args-value").text
    assert XSS_IMG in record.find_element("css selector", ".reason").text
    record.find_element("css selector", "details.tb summary").click()
    traceback = record.find_element("css selector", "pre.traceback").text
    assert "Traceback" in traceback and "ValueError: flaky failed with" in traceback and XSS_SCRIPT in traceback
    # the payloads are text: no dialog, no injected element (this holds without the CSP too), no handler ran
    _no_alert(browser)
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    scripts = browser.execute_script("return [...document.scripts].map(s => s.src)")
    assert scripts == [web.url + "static/workflows.js", web.url + "static/app.js"]

    rclient.set("fixed", 1)
    record.find_element("css selector", "button.requeue").click()
    wait_until(lambda: len(events(rclient, "flaky")) == 1, 15, what="a worker to run the requeued task")
    assert events(rclient, "flaky")[0]["args"] == [XSS_SCRIPT, XSS_IMG]
    assert rclient.llen("wakaq:failed:default") == 0
    wait_until(lambda: "no failed tasks" in _text(browser, "#failed-list"), 10, 0.1, "the record to leave the page")
    assert console_errors(browser) == []  # no script error, no CSP violation, nothing refused


def test_undecodable_payloads_shown_as_hex(browser: Any, web: WebServer, rclient: redis.Redis):
    from wakaq._wakaq import encode_task

    rclient.lpush("wakaq:failed:default", b"\xc1garbage record")
    rclient.zadd("wakaq:eta:default", {b"\xc1\xffnot a payload": 1, encode_task(XSS_IMG, [XSS_SCRIPT], {}, 0): 2})
    browser.get(web.url + "#failed")
    wait_until(lambda: "undecodable payload" in _text(browser, "#failed-list"), 10, 0.1, "the undecodable record")
    assert "unreadable failure record" in _text(browser, "#failed-list .reason")
    assert b"\xc1garbage".hex() in _text(browser, "#failed-list .hex")
    browser.get(web.url + "#eta")
    wait_until(lambda: XSS_IMG in _text(browser, "#eta-table"), 10, 0.1, "the eta tasks")
    assert "c1ff6e6f74" in _text(browser, "#eta-table .hex")
    assert XSS_SCRIPT in _text(browser, "#eta-table")
    _no_alert(browser)
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0


def test_daemons_page_shows_busy_children(browser: Any, web: WebServer, worker: Worker, rclient: redis.Redis):
    from tests.apps import web_app

    web_app.blocker.delay("long")
    wait_until(lambda: events(rclient, "blocker-start"), 10, what="the blocker to start")
    browser.get(web.url + "#daemons")
    row = "#daemons tr td.state"
    wait_until(lambda: _text(browser, row) == "alive", 10, 0.1, "the daemon row")
    page = _text(browser, "#daemons")
    assert str(worker.pid) in page
    wait_until(lambda: "blocker" in _text(browser, "#daemons ul.children li.busy"), 10, 0.1, "a busy child running it")
    rclient.set("release", 1)


def test_progress_bar_of_a_running_task_escaped(browser: Any, web: WebServer, worker: Worker, rclient: redis.Redis):
    from tests.apps import web_app

    handle = web_app.reporter.delay(3, 10, XSS_IMG + XSS_SCRIPT)
    wait_until(lambda: events(rclient, "reporter-start"), 10, what="the reporter to start")
    browser.get(web.url + "#daemons")
    css = f'#daemons ul.children li.busy div.progress[data-task-id="{handle.id}"]'
    wait_until(lambda: "3 / 10 (30%)" in _text(browser, css), 10, 0.1, "the task's progress bar")
    shown = _text(browser, css)
    assert shown.startswith("reporter") and f"note={XSS_IMG + XSS_SCRIPT!r}" in shown
    bar = browser.find_element("css selector", css + " progress")
    assert float(bar.get_attribute("value")) == 30.0
    _no_alert(browser)
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    rclient.set("release", 1)
    wait_until(lambda: _text(browser, css) == "", 15, 0.1, "the bar to leave with the finished task")


class _Attacker(BaseHTTPRequestHandler):
    """Another origin (another port) whose page tries to drop the failed tasks through the visitor's browser."""

    target = ""

    def do_GET(self) -> None:
        page = f"""<!doctype html><body>
<form id=f method=POST action="{self.target}api/failed/drop" enctype="text/plain">
<input name='{{"queue":"default","all":true,"x":"' value='"}}'></form>
<script>
fetch("{self.target}api/failed/drop", {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({{queue: "default", all: true}})}})
  .finally(() => document.getElementById("f").submit());
</script></body>"""
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_cross_site_post_refused_in_the_browser(browser: Any, web: WebServer, rclient: redis.Redis):
    rclient.lpush("wakaq:failed:default", b"\xc1kept")
    _Attacker.target = web.url
    attacker = ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    thread = threading.Thread(target=attacker.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{attacker.server_address[1]}/")
        wait_until(lambda: "CSRF" in browser.page_source or "refused" in browser.page_source, 10, 0.1, "the refusal")
    finally:
        attacker.shutdown()
        attacker.server_close()
    assert rclient.llen("wakaq:failed:default") == 1


def test_password_protected_dashboard_in_the_browser(
    browser: Any, tmp_path: Path, redis_url: str, rclient: redis.Redis
):
    server = WebServer(tmp_path, redis_url, "--host", "0.0.0.0", env={"WAKAQ_WEB_PASSWORD": "s3cret"}).wait_ready()
    try:
        browser.execute_cdp_cmd("Network.enable", {})
        auth = base64.b64encode(b"ops:s3cret").decode()
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {auth}"}})
        browser.get(server.url + "#overview")
        wait_until(lambda: _text(browser, '#queues tr[data-queue="default"] td.pending') == "0", 10, 0.1, "the page")
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        status = browser.execute_script("return fetch('/api/overview', {credentials: 'omit'}).then(r => r.status)")
        assert status == 401
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        server.stop()


def test_daemon_whose_heartbeat_stopped_shows_dead(browser: Any, web: WebServer, start_worker: StartWorker):
    import os
    import signal

    worker = start_worker(APP, heartbeat=2)
    try:
        children = worker.children()
        browser.get(web.url + "#daemons")
        wait_until(lambda: _text(browser, "#daemons td.state") == "alive", 10, 0.1, "the live daemon")
        for pid in (worker.pid, *children):
            os.kill(pid, signal.SIGKILL)
        # no other daemon is running to reap it: it stays listed, as dead
        wait_until(lambda: _text(browser, "#daemons td.state").startswith("dead"), 15, 0.2, "the daemon shown dead")
        assert "until reaped" in _text(browser, "#daemons td.state")
        wait_until(lambda: "dead" in _text(browser, "#badge-daemons"), 5, 0.1, "the menu badge")
    finally:
        worker.stop()


# ---- one set of counters: every view agrees ---------------------------------------------------------------------


def _info(redis_url: str) -> dict[str, Any]:
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "wakaq", "info", "--app", APP],
        env=dict(os.environ, WAKAQ_TEST_URL=redis_url),
        capture_output=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    info: dict[str, Any] = json.loads(out.stdout)
    return info


def _metrics(web: WebServer) -> tuple[int, int]:
    from prometheus_client.parser import text_string_to_metric_families

    from tests.webserver import request

    status, _, body = request(web.url + "metrics")
    assert status == 200
    done = failed = 0
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == "wakaq_tasks_done_total":
                done += int(s.value)
            elif s.name == "wakaq_tasks_failed_total" and s.labels["reason"] != "cancelled":
                failed += int(s.value)
    return done, failed


def _column_sum(driver: Any, css: str) -> int:
    """The sum of a column's numbers, read in one go (the page rebuilds its rows every second)."""
    texts = driver.execute_script(f"return [...document.querySelectorAll('{css}')].map(c => c.textContent)")
    return sum(int(t.replace(",", "")) for t in texts if t.strip() not in ("", NO_VALUE))


def test_sync_async_and_failing_tasks_count_the_same_everywhere(
    browser: Any, web: WebServer, worker: Worker, redis_url: str, rclient: redis.Redis
):
    """wakaq-info, the Daemons page, the Overview and /metrics all sum the one set of counters: async tasks are
    done tasks too (the daemons' own count once left them out)."""
    from tests.apps import web_app

    for i in range(30):
        web_app.quick.delay(i)
    for i in range(20):
        web_app.quick_async.delay(i)
    for i in range(4):
        web_app.broken.delay(i)
    done, failed = 50, 4
    wait_until(lambda: rclient.llen("wakaq:failed:default") == failed, 20, what="the failure records")

    def info_counts() -> tuple[int, int, int, int]:
        info = _info(redis_url)
        queues = info["queues"].values()
        (daemon,) = info["daemons"]
        return (
            sum(q["counters"]["done"] for q in queues),
            sum(q["counters"]["failed"] for q in queues),
            daemon["tasks_done"],
            daemon["tasks_failed"],
        )

    wait_until(lambda: info_counts() == (done, failed, done, failed), 20, 0.3, "wakaq-info: 50 done, 4 failed")
    # the parent's own tally of finished tasks (in its published info) counts async ones too
    (daemon,) = (m.decode() for m in rclient.smembers(KEYS.daemons))
    finished = lambda: json.loads(rclient.hget(KEYS.daemon_info(daemon), "info") or b"{}").get("tasks_done")  # noqa: E731
    wait_until(lambda: finished() == done + failed, 10, 0.2, "54 finished tasks in the daemon's info")
    assert _metrics(web) == (done, failed)
    browser.get(web.url + "#daemons")
    wait_until(lambda: _text(browser, "#daemons td.done") == str(done), 10, 0.1, "the Daemons page's tasks done")
    assert _column_sum(browser, "#daemons td.failed") == failed
    browser.get(web.url + "#overview")
    wait_until(lambda: _column_sum(browser, "#queues td.done") == done, 10, 0.1, "the Overview's done")
    assert _column_sum(browser, "#queues td.failed") == failed
    assert _column_sum(browser, "#queues td.records") == failed


# ---- latency, history, hover values, text alternatives ----------------------------------------------------------


def test_latency_history_hover_and_text_alternative(browser: Any, web: WebServer, worker: Worker, rclient: redis.Redis):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    from tests.apps import web_app
    from wakaq.web import minutes

    now = time.time()
    for m in range(int(now // 60) - 90, int(now // 60)):  # an hour and a half of history: 6 done a minute
        t = m * 60 + 30
        minutes.record(web_app.wakaq, rclient, t, {"high": {"counters": {"done": 6 * (m % 100_000), "failed": 0}}})
    for i in range(4):
        web_app.blocker.delay(f"b{i}")  # two run, two wait: the queue has a latency
    browser.get(web.url + "#overview")
    wait_until(
        lambda: _text(browser, '#queues tr[data-queue="default"] td.latency') not in ("", "0 s", NO_VALUE),
        15,
        0.1,
        "a latency for queue default",
    )
    assert _text(browser, '#queues tr[data-queue="default"] td.latency').endswith(" s")
    # the per-minute history since an hour ago: 60 minutes of 6 done
    Select(browser.find_element("id", "since")).select_by_value("3600")
    wait_until(lambda: "processed 360 · failed 0 since" in _text(browser, "#history-totals"), 10, 0.1, "the totals")
    # hover values on a chart
    chart = browser.find_element("id", "chart-history")
    ActionChains(browser).move_to_element_with_offset(chart, 100, 0).perform()
    tip = browser.find_element("css selector", "#history .tip")
    wait_until(lambda: tip.is_displayed() and "done per minute: 6" in tip.text, 5, 0.1, "the hover values")
    # the text alternative: an accessible name with the latest values, and a table of the values
    # NOTE: the latest minute is the dashboard's own sample of the real counters (0 done: the blockers still run)
    assert "Latest: done per minute 0, failed per minute 0" in (chart.get_attribute("aria-label") or "")
    assert "Latest: done/s" in (browser.find_element("id", "chart-rate").get_attribute("aria-label") or "")
    browser.find_element("css selector", "#history details.chart-data summary").click()
    table = "return [...document.querySelectorAll('#table-history tbody tr')].map(r => r.cells[1].textContent)"
    # NOTE: read in one go: the open table is refilled with every poll
    wait_until(lambda: browser.execute_script(table).count("6") >= 59, 10, 0.1, "the table of the values")
    rclient.set("release", 1)


def _click(driver: Any, css: str) -> bool:
    """Click `css` (the overview's rows are redrawn every second: a stale button is looked up again)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        driver.find_element("css selector", css).click()
    except (NoSuchElementException, StaleElementReferenceException):
        return False
    return True


def test_pause_and_resume_buttons(browser: Any, web: WebServer, worker: Worker, rclient: redis.Redis):
    """The overview's Pause button (a POST with the CSRF token, after a confirm) pauses the queue on every daemon:
    its tasks stay pending while another queue runs, the row says so; Resume runs them, each once."""
    from tests.apps import web_app

    rclient.set("release", 1)  # blockers return at once
    console_errors(browser)
    browser.get(web.url + "#overview")
    row = '#queues tr[data-queue="default"]'
    wait_until(lambda: _click(browser, f"{row} button.pause"), 10, 0.1, "the Pause button")
    assert "Pause queue default?" in browser.switch_to.alert.text
    browser.switch_to.alert.accept()
    wait_until(lambda: rclient.smembers(KEYS.paused) == {b"default"}, 10, 0.1, "the queue paused in Redis")
    wait_until(lambda: _text(browser, f"{row} .paused-tag").lower() == "paused", 10, 0.1, "the row marked paused")
    assert "paused" in (browser.find_element("css selector", row).get_attribute("class") or "")
    for i in range(3):
        web_app.blocker.delay(f"p{i}")
    web_app.quick.delay(99)
    wait_until(lambda: events(rclient, "quick"), 15, what="the other queue to run")
    wait_until(lambda: _cells(browser, "default")["pending"] == "3", 10, 0.1, "3 pending on the paused queue")
    assert events(rclient, "blocker-start") == []
    wait_until(lambda: _click(browser, f"{row} button.resume"), 10, 0.1, "the Resume button")
    wait_until(lambda: len(events(rclient, "blocker-end")) == 3, 15, what="the resumed queue's tasks")
    assert sorted(e["tag"] for e in events(rclient, "blocker-end")) == ["p0", "p1", "p2"]
    assert rclient.smembers(KEYS.paused) == set()
    wait_until(lambda: _text(browser, f"{row} button.pause") == "Pause", 10, 0.1, "the row running again")
    assert _text(browser, f"{row} .paused-tag") == ""
    assert "resumed default" in _text(browser, "#flash")
    assert console_errors(browser) == []


# ---- workflows ----------------------------------------------------------------------------------------------------


def _rows(driver: Any, css: str, attribute: str) -> list[tuple[str, str, str]]:
    """(attribute, task/tasks cell, state/status cell) of each row, read in one go (the page refills them)."""
    return [
        tuple(row)
        for row in driver.execute_script(
            f"return [...document.querySelectorAll('{css}')].map(r => [r.getAttribute('{attribute}'),"
            " (r.querySelector('.task, .tasks') || {}).textContent, (r.querySelector('.wf-state') || {}).textContent])"
        )
    ]


def test_workflows_page_shows_a_chain_and_a_failed_group_step_by_step(
    browser: Any, web: WebServer, worker: Worker, rclient: redis.Redis
):
    from tests.apps import web_app
    from wakaq import TaskFailed, group

    chained = (web_app.wf_add.s(1, 2) | web_app.wf_add.s(10)).delay()
    assert chained.result(timeout=20) == 13
    grouped = group([web_app.wf_add.s(1, 1), web_app.wf_fail.s(XSS_IMG), web_app.wf_add.s(2, 2)])
    handle = grouped.then(web_app.wf_collect.s()).delay()
    with pytest.raises(TaskFailed):
        handle.result(timeout=20)
    console_errors(browser)  # forget earlier tests' messages
    browser.get(web.url + "#workflows")
    want = [(handle.id, "wf_add, wf_fail, wf_collect", "failed"), (chained.id, "wf_add", "done")]
    wait_until(lambda: _rows(browser, "#wf-table tbody tr", "data-workflow") == want, 10, 0.1, "the two workflows")
    assert f"ValueError: wf_fail got {XSS_IMG}" in _text(browser, f'#wf-table tr[data-workflow="{handle.id}"] .error')
    assert "2 recent: 0 running · 1 done · 1 failed · 0 cancelled" == _text(browser, "#wf-counts")
    # from the list to the failed group's steps
    browser.find_element("css selector", f'#wf-table tr[data-workflow="{handle.id}"] a.wf-link').click()
    steps = [
        ("2", "wf_add", "done"),
        ("3", "wf_fail", "failed"),
        ("4", "wf_add", "done"),
        ("5", "wf_collect", "waiting"),
    ]
    wait_until(lambda: _rows(browser, "#wf-members tbody tr", "data-node") == steps, 10, 0.1, "the group's steps")
    assert browser.current_url.endswith(f"#workflows/{handle.id}")
    assert _text(browser, "#wf-status-text") == "failed"
    assert f"ValueError: wf_fail got {XSS_IMG} (node 3)" == _text(browser, "#wf-summary .wf-error")
    assert _text(browser, '#wf-members tr[data-node="3"] .outcome') == f"ValueError: wf_fail got {XSS_IMG}"
    assert _text(browser, '#wf-members tr[data-node="2"] .outcome') == "2"
    assert _text(browser, '#wf-members tr[data-node="2"] .place') == "member 1 of group 1"
    assert "will not start its waiting steps" in _text(browser, "#wf-summary")
    assert not browser.find_element("id", "wf-cancel").is_enabled()  # it ended: nothing to cancel
    # the chain's result, then back to the list
    browser.get(web.url + f"#workflows/{chained.id}")
    wait_until(lambda: _text(browser, "#wf-summary .wf-result") == "13", 10, 0.1, "the chain's result")
    assert _rows(browser, "#wf-members tbody tr", "data-node") == [("1", "wf_add", "done"), ("2", "wf_add", "done")]
    browser.find_element("css selector", '#wf-detail-view a[href="#workflows"]').click()
    wait_until(lambda: browser.find_element("id", "wf-table").is_displayed(), 5, 0.1, "the list again")
    # the error is text: no dialog, no injected element, no script error
    _no_alert(browser)
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    assert console_errors(browser) == []


def test_cancel_workflow_button(browser: Any, web: WebServer, worker: Worker, rclient: redis.Redis):
    from tests.apps import web_app
    from wakaq import chain

    handle = chain(web_app.blocker.si("wf"), web_app.wf_add.si(1, 2)).delay()
    wait_until(lambda: events(rclient, "blocker-start"), 10, what="the first step to start")
    browser.get(web.url + f"#workflows/{handle.id}")
    want = [("1", "blocker", "running"), ("2", "wf_add", "waiting")]
    wait_until(lambda: _rows(browser, "#wf-members tbody tr", "data-node") == want, 10, 0.1, "the running step")
    button = browser.find_element("id", "wf-cancel")
    wait_until(button.is_enabled, 5, 0.1, "the cancel button")
    button.click()
    alert = browser.switch_to.alert
    assert handle.id in alert.text
    alert.accept()
    wait_until(lambda: _text(browser, "#wf-status-text") == "cancelled", 10, 0.1, "the workflow shown cancelled")
    assert "cancelled workflow" in _text(browser, "#flash") and not button.is_enabled()
    assert handle.status() == "cancelled"
    rclient.set("release", 1)
    wait_until(lambda: events(rclient, "blocker-end"), 10, what="the running step to finish")
    # the running step finished; the next one never started
    after = [("1", "blocker", "done"), ("2", "wf_add", "waiting")]
    wait_until(lambda: _rows(browser, "#wf-members tbody tr", "data-node") == after, 10, 0.1, "the steps after cancel")
    assert events(rclient, "wf_add") == []
