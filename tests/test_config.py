"""Every configuration error raises WakaQError with a message naming the offending value."""

import logging
from datetime import timedelta
from typing import Any

import pytest

from wakaq import CronTask, Queue, WakaQ, WakaQError


def make(**options: Any) -> WakaQ:
    options.setdefault("queues", ["default"])
    return WakaQ(**options)


def test_defaults_match_wakaq() -> None:
    app = make()
    assert app.url == "redis://localhost:6379/0"
    assert app.max_retries == 0
    assert app.soft_timeout is None and app.hard_timeout is None
    assert app.wait_timeout == 1.0
    assert app.socket_timeout == 15.0 and app.socket_connect_timeout == 15.0
    assert app.health_check_interval == 30.0
    assert app.worker_log_level == logging.INFO
    assert app.scheduler_log_level == logging.DEBUG
    assert app.max_mem_percent is None and app.max_tasks_per_worker is None
    assert app.async_concurrency == 0
    assert app.eager is False
    assert app.key_prefix == "wakaq" and app.keys.queue("x") == "wakaq:x"
    assert app.tasks == {} and app.schedules == [] and app.exclude_queues == []


def test_readme_options() -> None:
    app = make(soft_timeout=30, hard_timeout=timedelta(minutes=1), max_retries=3, max_mem_percent=98)
    assert app.soft_timeout == timedelta(seconds=30)
    assert app.hard_timeout == timedelta(seconds=60)
    assert app.max_retries == 3
    assert app.max_mem_percent == 98


@pytest.mark.parametrize(
    ("options", "url"),
    [
        ({"host": "redis.local", "port": 6380, "db": 2}, "redis://redis.local:6380/2"),
        ({"password": "p@ss/w:rd"}, "redis://:p%40ss%2Fw%3Ard@localhost:6379/0"),
        ({"username": "me", "password": "pw"}, "redis://me:pw@localhost:6379/0"),
        ({"username": "a b"}, "redis://a%20b@localhost:6379/0"),
        ({"host": "::1"}, "redis://[::1]:6379/0"),
        ({"url": "rediss://u:p@h:1/3", "host": "ignored"}, "rediss://u:p@h:1/3"),
        ({"url": "unix:///tmp/redis.sock?db=1"}, "unix:///tmp/redis.sock?db=1"),
    ],
)
def test_url(options: dict[str, Any], url: str) -> None:
    assert make(**options).url == url


@pytest.mark.parametrize(("level", "expected"), [("info", logging.INFO), ("WARNING", logging.WARNING), (5, 5)])
def test_log_levels(level: Any, expected: int) -> None:
    app = make(worker_log_level=level, scheduler_log_level=level)
    assert app.worker_log_level == app.scheduler_log_level == expected


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"queues": []}, r"queues must be a non-empty list"),
        ({"queues": "default"}, r"queues must be a non-empty list of queues, got 'default'"),
        ({"queues": ["a", (1, "a")]}, r"duplicate queue name 'a'"),
        ({"queues": ["a", " b"]}, r"invalid queue name ' b'"),
        ({"queues": ["eta:b"]}, r"invalid queue name 'eta:b'"),
        ({"exclude_queues": ["nope"]}, r"unknown queue 'nope' in exclude_queues"),
        ({"exclude_queues": "default"}, r"exclude_queues must be a list"),
        ({"soft_timeout": 10, "hard_timeout": 10}, r"hard_timeout \(10s\) must be greater than soft_timeout \(10s\)"),
        ({"soft_timeout": 20, "hard_timeout": 10}, r"hard_timeout \(10s\).*soft_timeout \(20s\).*the app"),
        ({"soft_timeout": 1}, r"soft_timeout \(1s\) of the app must be greater than wait_timeout \(1s\)"),
        ({"hard_timeout": 2, "wait_timeout": 5}, r"hard_timeout \(2s\) of the app .* wait_timeout \(5s\)"),
        ({"soft_timeout": -3}, r"soft_timeout must be a positive duration, got -3"),
        ({"soft_timeout": "30"}, r"soft_timeout must be seconds .* got '30'"),
        ({"hard_timeout": timedelta(seconds=-1)}, r"hard_timeout must be a positive duration"),
        ({"wait_timeout": 0}, r"wait_timeout must be a positive number of seconds, got 0"),
        ({"wait_timeout": None}, r"wait_timeout must be a positive number of seconds, got None"),
        ({"socket_timeout": -1}, r"socket_timeout must be a positive number of seconds, got -1"),
        ({"max_mem_percent": 0}, r"max_mem_percent must be between 1 and 99, got 0"),
        ({"max_mem_percent": 100}, r"max_mem_percent must be between 1 and 99, got 100"),
        ({"max_mem_percent": "98"}, r"max_mem_percent must be between 1 and 99, got '98'"),
        ({"max_retries": -1}, r"max_retries must be an int >= 0, got -1"),
        ({"max_retries": 1.5}, r"max_retries must be an int >= 0, got 1.5"),
        ({"max_tasks_per_worker": 0}, r"max_tasks_per_worker must be an int >= 1, got 0"),
        ({"concurrency": -1}, r"concurrency must be >= 1, got -1"),
        ({"concurrency": "cores-cores"}, r"concurrency must be >= 1, got 'cores-cores'"),
        ({"concurrency": "cores*x"}, r"invalid expression 'cores\*x': unexpected 'x'"),
        ({"async_concurrency": -1}, r"async_concurrency must be >= 0.*-1"),
        ({"async_concurrency": "1-cores-1"}, r"async_concurrency must be >= 0.*'1-cores-1'"),
        ({"worker_log_level": "LOUD"}, r"worker_log_level must be a logging level.*'LOUD'"),
        ({"scheduler_log_level": 1.5}, r"scheduler_log_level must be a logging level.*1.5"),
        ({"worker_log_file": 3}, r"worker_log_file must be a path, got 3"),
        ({"url": "http://localhost"}, r"invalid url 'http://localhost'"),
        ({"port": 70000}, r"invalid port 70000"),
        ({"db": -1}, r"invalid db -1"),
        ({"host": ""}, r"invalid host ''"),
        ({"key_prefix": "my prefix"}, r"invalid key_prefix 'my prefix'"),
        ({"key_prefix": ""}, r"invalid key_prefix ''"),
        ({"schedules": [("61 * * * *", "mytask")]}, r"invalid cron '61 \* \* \* \*' for task 'mytask': .*range"),
        ({"schedules": [("nope", "t")]}, r"invalid cron 'nope' for task 't'"),
        ({"schedules": [CronTask("* * * * *", "t", queue="nope")]}, r"unknown queue 'nope' in schedule"),
        ({"schedules": [("* * * * *",)]}, r"invalid schedule"),
        ({"schedules": [("* * * * *", "t", "notalist")]}, r"args of scheduled task 't' must be a list"),
    ],
)
def test_app_errors(options: dict[str, Any], pattern: str) -> None:
    with pytest.raises(WakaQError, match=pattern):
        make(**options)


def test_queue_timeouts_checked_against_app_and_wait_timeout() -> None:
    with pytest.raises(WakaQError, match=r"hard_timeout \(60s\) .* soft_timeout \(90s\) for queue 'slow'"):
        make(queues=[Queue("slow", soft_timeout=90)], hard_timeout=60)
    # WakaQ's wait_timeout rule is for the app's timeouts only (see WakaQ._check_wait_timeout)
    assert make(queues=[Queue("fast", soft_timeout=0.5)]).queues[0].soft_timeout == timedelta(seconds=0.5)


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"queue": "nope"}, r"unknown queue 'nope' in task 'f'"),
        ({"queue": Queue("nope")}, r"unknown queue 'nope' in task 'f'"),
        ({"soft_timeout": 10, "hard_timeout": 5}, r"hard_timeout \(5s\) must be greater than soft_timeout \(10s\)"),
        ({"max_retries": -2}, r"max_retries of task 'f' must be an int >= 0, got -2"),
        ({"hard_timeout": "1m"}, r"hard_timeout of task 'f' must be seconds"),
    ],
)
def test_task_errors(options: dict[str, Any], pattern: str) -> None:
    app = make()

    def f() -> None:
        pass

    with pytest.raises(WakaQError, match=pattern):
        app.task(**options)(f)
    assert app.tasks == {}


def test_task_effective_timeouts_checked_with_queue_and_app() -> None:
    app = make(queues=[Queue("q", hard_timeout=30), "default"], hard_timeout=60)

    def f() -> None:
        pass

    with pytest.raises(WakaQError, match=r"hard_timeout \(30s\) .* soft_timeout \(45s\) for task 'f' on queue 'q'"):
        app.task(queue="q", soft_timeout=45)(f)
    with pytest.raises(WakaQError, match=r"hard_timeout \(60s\) .* soft_timeout \(90s\) for task 'f' on queue"):
        app.task(soft_timeout=90)(f)
    task = app.task(queue="q", soft_timeout=20)(f)
    assert app.timeouts_for(task, app.queues_by_name["q"]) == (timedelta(seconds=20), timedelta(seconds=30))


def test_duplicate_task_name() -> None:
    app = make()

    @app.task
    def f() -> None:
        pass

    with pytest.raises(WakaQError, match=r"duplicate task name 'f'"):

        @app.task
        def f() -> None:
            pass


def test_max_retries_resolution() -> None:
    app = make(queues=["a", Queue("b", max_retries=5)], max_retries=2)

    @app.task(max_retries=0)
    def zero() -> None:
        pass

    @app.task
    def inherit() -> None:
        pass

    assert app.max_retries_for(zero, app.queues_by_name["b"]) == 0
    assert app.max_retries_for(inherit, app.queues_by_name["b"]) == 5
    assert app.max_retries_for(inherit, app.queues_by_name["a"]) == 2
    assert app.max_retries_for(inherit, None) == 2


def test_validate_schedules() -> None:
    app = make(schedules=[("* * * * *", "known"), CronTask("*/5 * * * *", "missing", args=[1])])

    @app.task
    def known() -> None:
        pass

    with pytest.raises(WakaQError, match=r"unknown task 'missing' in schedule '\*/5 \* \* \* \*'"):
        app.validate_schedules()
    app.schedules.pop()
    app.validate_schedules()


def test_cluster_urls_pick_the_cluster_layout() -> None:
    app = WakaQ(queues=["a", "b"], url="redis+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001/0", key_prefix="app")
    assert app.keys.cluster and app.keys.queue("a") == "{app}:a"
    assert [q.broker_key for q in app.queues] == ["{app}:a", "{app}:b"]
    assert app.queues[0].broker_eta_key == "{app}:eta:a"
    plain = WakaQ(queues=["a"], url="redis://127.0.0.1:7000/0", key_prefix="app")
    assert not plain.keys.cluster and plain.queues[0].broker_key == "app:a"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://127.0.0.1/0", "is not host:port"),
        ("redis+cluster://h:1,h:x/", "is not host:port"),
        ("redis+cluster://h:1/2", "only db 0"),
        ("redis+cluster://:secret@h:1/2", "redis+cluster://:***@h:1/2"),
    ],
)
def test_bad_cluster_urls_are_named(url: str, message: str) -> None:
    with pytest.raises(WakaQError, match="invalid cluster url") as info:
        WakaQ(queues=["a"], url=url)
    assert message in str(info.value) and "secret" not in str(info.value)
