"""Redis Sentinel URLs for the redis-py clients (admin commands, scheduler); the Rust clients parse the same URL
in `rust/src/broker/sentinel.rs`.

    redis+sentinel://[user:password@]host:port[,host:port...]/<master name>[/<db>]

The credentials and db are the master's; the sentinels are asked without a password. redis-py's `Sentinel`
resolves the master on every new connection (and drops connections to a demoted master), so clients follow a
failover.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

from wakaq.exceptions import WakaQError

SCHEME = "redis+sentinel"


def is_sentinel_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() == SCHEME


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: list[tuple[str, int]]
    master: str
    db: int
    username: str | None
    password: str | None


def _addr(text: str, url: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise WakaQError(f"invalid sentinel url {url!r}: {text!r} must be host:port")
    return host, int(port)


def parse(url: str) -> SentinelUrl:
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels = [_addr(h, url) for h in hosts.split(",")]
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise WakaQError(f"invalid sentinel url {url!r}: the master name is missing (.../<master name>/<db>)")
    if len(path) > 1 and not path[1].isdigit():
        raise WakaQError(f"invalid sentinel url {url!r}: db {path[1]!r} is not a number")
    username, password = None, None
    if userinfo:
        user, has_pw, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if has_pw else None
    return SentinelUrl(sentinels, unquote(path[0]), int(path[1]) if len(path) > 1 else 0, username, password)


def master_client(url: str, **kwargs: Any) -> redis.Redis:
    """A redis-py client of the master the sentinels name (re-resolved on every reconnect)."""
    s = parse(url)
    timeouts: dict[str, Any] = {k: kwargs[k] for k in ("socket_timeout", "socket_connect_timeout") if k in kwargs}
    sentinel = Sentinel(s.sentinels, sentinel_kwargs=timeouts, **timeouts)
    kwargs = {k: v for k, v in kwargs.items() if k not in timeouts}
    return sentinel.master_for(s.master, db=s.db, username=s.username, password=s.password, **timeouts, **kwargs)


def client_for(url: str, **kwargs: Any) -> redis.Redis:
    """`redis.Redis.from_url(url, **kwargs)`, or the Sentinel master client for a `redis+sentinel://` URL."""
    if is_sentinel_url(url):
        return master_client(url, **kwargs)
    return redis.Redis.from_url(url, **kwargs)
