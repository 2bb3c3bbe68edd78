"""Normalisers for configuration values. Each returns the canonical form or raises `WakaQError` naming the value."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from urllib.parse import quote, urlsplit

from wakaq.constants import (
    CLUSTER_SCHEMES,
    KEY_PREFIX_CHARS,
    RESERVED_QUEUE_NAMES,
    RESERVED_QUEUE_PREFIXES,
    START_METHODS,
    URL_SCHEMES,
)
from wakaq.exceptions import WakaQError

TimeoutValue = int | float | timedelta | None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_timeout(value: TimeoutValue, what: str) -> timedelta | None:
    """int/float seconds or timedelta -> timedelta; None or 0 -> None (no limit, as WakaQ treats falsy)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif _is_number(value):
        seconds = float(value)
    else:
        raise WakaQError(f"{what} must be seconds (int/float) or a timedelta, got {value!r}")
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise WakaQError(f"{what} must be a positive duration, got {value!r}")
    return timedelta(seconds=seconds) if seconds else None


def to_seconds(value: int | float | timedelta | None, what: str, *, allow_none: bool = True) -> float | None:
    """A duration as float seconds (socket timeouts, wait timeout); must be positive."""
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if not _is_number(value) or not 0 < float(value) < float("inf"):  # type: ignore[arg-type]
        raise WakaQError(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def to_max_retries(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise WakaQError(f"{what} must be an int >= 0, got {value!r}")
    return value


def to_positive_int(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise WakaQError(f"{what} must be an int >= 1, got {value!r}")
    return value


def to_max_mem_percent(value: int | float | None) -> int | None:
    if value is None:
        return None
    if not _is_number(value) or not 1 <= value <= 99:
        raise WakaQError(f"max_mem_percent must be between 1 and 99, got {value!r}")
    return int(value)


def to_log_level(value: int | str | None, what: str, default: int) -> int:
    """A logging level given as an int or a name ('info', 'DEBUG')."""
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        level = logging.getLevelName(value.strip().upper())
        if isinstance(level, int):
            return level
    raise WakaQError(f"{what} must be a logging level (int or name like 'INFO'), got {value!r}")


def to_log_file(value: str | os.PathLike[str] | None, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str | os.PathLike):
        return os.fspath(value)
    raise WakaQError(f"{what} must be a path, got {value!r}")


def to_start_method(value: object) -> str:
    if value not in START_METHODS:
        raise WakaQError(f"start_method must be one of {', '.join(map(repr, START_METHODS))}, got {value!r}")
    return str(value)


def check_queue_name(name: object) -> str:
    """A queue name must be a non-empty str without whitespace that cannot collide with wakaq's own keys."""
    if not isinstance(name, str) or not name:
        raise WakaQError(f"invalid queue name {name!r}: must be a non-empty str")
    if any(ch.isspace() or not ch.isprintable() for ch in name):
        raise WakaQError(f"invalid queue name {name!r}: must not contain whitespace or control characters")
    if name in RESERVED_QUEUE_NAMES or name.startswith(RESERVED_QUEUE_PREFIXES):
        raise WakaQError(f"invalid queue name {name!r}: collides with wakaq's own keys")
    return name


def check_key_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not prefix or any(ch not in KEY_PREFIX_CHARS for ch in prefix):
        raise WakaQError(f"invalid key_prefix {prefix!r}: use letters, digits, '_', '.' and '-'")
    return prefix


def check_url(url: object) -> str:
    if not isinstance(url, str) or urlsplit(url).scheme not in URL_SCHEMES:
        raise WakaQError(
            f"invalid url {url!r}: must start with redis://, rediss://, unix://, redis+cluster:// (rediss+cluster://)"
            " or redis+sentinel://"
        )
    if is_cluster_url(url):
        cluster_nodes(url)
    return url


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The seed nodes of `redis+cluster://[user:password@]host:port[,host:port...][/0]` as (host, port) pairs.

    A cluster has only database 0, so any other db in the path is an error."""
    parts = urlsplit(url)
    hosts = parts.netloc.rsplit("@", 1)[-1]
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise WakaQError(f"invalid cluster url {redact_url(url)!r}: {item!r} is not host:port")
        nodes.append((host, int(port)))
    if parts.path.strip("/") not in ("", "0"):
        raise WakaQError(f"invalid cluster url {redact_url(url)!r}: a Redis Cluster has only db 0")
    return nodes


def build_url(host: str, port: int, username: str | None, password: str | None, db: int, *, tls: bool = False) -> str:
    """redis:// (rediss:// with `tls`) URL from the separate options; credentials are percent-quoted."""
    if not isinstance(host, str) or not host:
        raise WakaQError(f"invalid host {host!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise WakaQError(f"invalid port {port!r}")
    if not isinstance(db, int) or isinstance(db, bool) or db < 0:
        raise WakaQError(f"invalid db {db!r}")
    userinfo = ""
    if username is not None or password is not None:
        userinfo = quote(username or "", safe="")
        if password is not None:
            userinfo += ":" + quote(password, safe="")
        userinfo += "@"
    netloc_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    scheme = "rediss" if tls else "redis"
    return f"{scheme}://{userinfo}{netloc_host}:{port}/{db}"


def redact_url(url: str) -> str:
    """The URL without its password, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + netloc).geturl()
