"""`redis+sentinel://` URLs: parsed the same way by the Python (redis-py) and Rust clients, with clear errors."""

from __future__ import annotations

import pytest

from wakaq import WakaQ, _wakaq
from wakaq.exceptions import BrokerError, WakaQError
from wakaq.sentinel import SentinelUrl, is_sentinel_url, parse


def test_parse() -> None:
    url = "redis+sentinel://alice:s%40cret@127.0.0.1:26379,[::1]:26380/mymaster/2"
    assert is_sentinel_url(url) and not is_sentinel_url("redis://h:1/0")
    assert parse(url) == SentinelUrl([("127.0.0.1", 26379), ("::1", 26380)], "mymaster", 2, "alice", "s@cret")
    assert parse("redis+sentinel://h:1/m") == SentinelUrl([("h", 1)], "m", 0, None, None)
    assert parse("redis+sentinel://:pw@h:1/m").password == "pw"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+sentinel://h:1", "the master name is missing"),
        ("redis+sentinel://h/m", "'h' must be host:port"),
        ("redis+sentinel://h:1/m/x", "db 'x' is not a number"),
    ],
)
def test_bad_urls(url: str, why: str) -> None:
    with pytest.raises(WakaQError, match=why):
        parse(url)


def test_the_app_and_the_rust_clients_take_it() -> None:
    app = WakaQ(queues=["q"], url="redis+sentinel://127.0.0.1:1,127.0.0.1:2/m/0")
    assert app.url.startswith("redis+sentinel://")
    _wakaq.Broker("redis+sentinel://127.0.0.1:1/m/0")  # does not connect yet
    with pytest.raises(BrokerError, match="the master name is missing"):
        _wakaq.Broker("redis+sentinel://127.0.0.1:1")
    with pytest.raises(BrokerError, match="no sentinel named a reachable master"):
        _wakaq.Broker("redis+sentinel://127.0.0.1:1/m/0", socket_timeout=0.5, connect_timeout=0.5).ping()
