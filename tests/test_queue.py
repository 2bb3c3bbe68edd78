from datetime import timedelta

import pytest

from wakaq import Queue, WakaQ, WakaQError
from wakaq.queue import sort_queues


def test_defaults() -> None:
    q = Queue("jobs")
    assert (q.name, q.priority, q.max_retries, q.soft_timeout, q.hard_timeout) == ("jobs", -1, None, None, None)
    assert q.broker_key == "wakaq:jobs"
    assert q.broker_eta_key == "wakaq:eta:jobs"


def test_timeouts_normalised_to_timedelta() -> None:
    q = Queue("jobs", 2, max_retries=5, soft_timeout=300, hard_timeout=timedelta(minutes=6))
    assert q.soft_timeout == timedelta(seconds=300)
    assert q.hard_timeout == timedelta(seconds=360)
    assert Queue("x", soft_timeout=1.5).soft_timeout == timedelta(seconds=1.5)
    assert Queue("x", soft_timeout=0).soft_timeout is None


@pytest.mark.parametrize(
    ("obj", "name", "priority"),
    [
        ("plain", "plain", -1),
        ((0, "high"), "high", 0),
        (("high", 0), "high", 0),
        ([3, "other"], "other", 3),
        (Queue("q", 7), "q", 7),
    ],
)
def test_create(obj: object, name: str, priority: int) -> None:
    q = Queue.create(obj)  # type: ignore[arg-type]
    assert (q.name, q.priority) == (name, priority)


def test_create_returns_the_same_queue() -> None:
    q = Queue("q")
    assert Queue.create(q) is q


@pytest.mark.parametrize("obj", [None, 5, ("a", "b"), (1, 2, 3), ("a",), {"name": "a"}])
def test_create_rejects(obj: object) -> None:
    with pytest.raises(WakaQError):
        Queue.create(obj)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        *["", " ", "a b", "a\nb", "tab\there", "nul\x00", "daemons", "done"],
        *["eta:x", "bell:x", "failed:x", "bcast:x", "inflight:x", "hb:x", "sched:x", "stats:x", "daemon:x"],
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(WakaQError) as info:
        Queue(name)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("name", ["default", "a-high-priority-queue", "x.y_z", "with:colon", "ünïcode", "eta"])
def test_valid_names(name: str) -> None:
    assert Queue(name).name == name


def test_bad_priority() -> None:
    with pytest.raises(WakaQError, match="'high'"):
        Queue("q", "high")  # type: ignore[arg-type]
    with pytest.raises(WakaQError, match="True"):
        Queue("q", True)


def test_hard_must_exceed_soft() -> None:
    with pytest.raises(WakaQError, match=r"hard_timeout \(10s\) must be greater than soft_timeout \(10s\).*'q'"):
        Queue("q", soft_timeout=10, hard_timeout=10)


def test_negative_max_retries() -> None:
    with pytest.raises(WakaQError, match=r"max_retries of queue 'q'.*-1"):
        Queue("q", max_retries=-1)


def test_sort_and_default_priority() -> None:
    queues = sort_queues([Queue.create(x) for x in ["last", (2, "low"), (0, "high"), ("med", 1), "also-last"]], "pfx")
    assert [(q.name, q.priority) for q in queues] == [
        ("high", 0),
        ("med", 1),
        ("low", 2),
        ("last", 3),
        ("also-last", 3),
    ]
    assert queues[0].broker_key == "pfx:high"


def test_app_orders_queues_and_picks_default() -> None:
    user_queue = Queue("other", priority=3, max_retries=5, soft_timeout=300, hard_timeout=360)
    app = WakaQ(queues=[(0, "high"), (1, "med"), (2, "low"), user_queue, "default"], key_prefix="app1")
    assert [q.name for q in app.queues] == ["high", "med", "low", "other", "default"]
    assert app.default_queue.name == "default"
    assert app.default_queue.priority == 4
    assert app.queues_by_name["other"].max_retries == 5
    assert app.queues_by_key["app1:med"].name == "med"
    assert app.queues_by_name["high"].broker_eta_key == "app1:eta:high"
    assert user_queue.prefix == "wakaq"  # the user's object is not modified


def test_all_plain_queues_keep_their_order() -> None:
    app = WakaQ(queues=["a", "b", "c"])
    assert [(q.name, q.priority) for q in app.queues] == [("a", 0), ("b", 0), ("c", 0)]
    assert app.default_queue.name == "c"


def test_exclude_queues() -> None:
    app = WakaQ(queues=["a", "b", "c"], exclude_queues=["b"])
    assert [q.name for q in app.worker_queues] == ["a", "c"]
    assert app.broker_keys == ["wakaq:a", "wakaq:c"]
