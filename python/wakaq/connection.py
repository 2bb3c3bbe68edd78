"""Connection settings shared by every Redis client of an app: TLS options, redis-py keyword arguments, and one-line
descriptions of connection failures.

TLS options use redis-py's names (`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`) and only apply to
`rediss://` URLs. The same values go to the Rust `Broker`/`Consumer`/worker daemon and to redis-py (admin commands,
scheduler), so every client of an app trusts the same CA.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from wakaq.config import cluster_nodes, is_cluster_url, redact_url
from wakaq.exceptions import BrokerError, WakaQError

if TYPE_CHECKING:
    import ssl

    import redis

    from wakaq.protocols import RedisSettings

TLS_SCHEMES = ("rediss", "valkeys", "rediss+cluster")
# NOTE: `ssl.CERT_REQUIRED` and `ssl.CERT_NONE` are IntEnums equal to these; `ssl` itself is not imported here, to
# keep it (and OpenSSL) out of the worker's start.
CERT_REQS: dict[object, str] = {"required": "required", "none": "none", 2: "required", 0: "none"}
PLAIN_TO_TLS_HINT = " (if that port expects TLS, use a rediss:// url)"

PathArg = str | os.PathLike[str] | None


def is_tls_url(url: str) -> bool:
    return urlsplit(url).scheme in TLS_SCHEMES


def _pem_path(value: PathArg, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise WakaQError(f"{what} must be a path to a PEM file, got {value!r}")
    path = os.fspath(value)
    try:
        with open(path, "rb") as f:
            text = f.read(1 << 20)
    except OSError as e:
        raise WakaQError(f"{what} {path!r} is not a readable file: {e.strerror or e}") from None
    marker, kind = (
        (b"PRIVATE KEY-----", "private key") if what == "ssl_keyfile" else (b"BEGIN CERTIFICATE", "certificate")
    )
    if marker not in text:
        raise WakaQError(f"{what} {path!r} is not a PEM file with a {kind}")
    return path


def tls_options(
    url: str,
    ssl_ca_certs: PathArg = None,
    ssl_certfile: PathArg = None,
    ssl_keyfile: PathArg = None,
    ssl_cert_reqs: str | ssl.VerifyMode | None = None,
) -> dict[str, str]:
    """The TLS options that differ from the defaults, validated; keys are the keyword names of the Rust classes.

    `ssl_cert_reqs`: "required" (the default: verify the certificate and the host name) or "none" (accept any
    certificate: encryption without authentication). redis-py's "optional" is not supported."""
    options: dict[str, str] = {}
    for key, value in (("ssl_ca_certs", ssl_ca_certs), ("ssl_certfile", ssl_certfile), ("ssl_keyfile", ssl_keyfile)):
        path = _pem_path(value, key)
        if path is not None:
            options[key] = path
    if ssl_keyfile is not None and ssl_certfile is None:
        raise WakaQError("ssl_keyfile needs ssl_certfile (the client certificate)")
    if ssl_cert_reqs is not None:
        wanted: object = ssl_cert_reqs.lower() if isinstance(ssl_cert_reqs, str) else ssl_cert_reqs
        reqs = CERT_REQS.get(wanted) if not isinstance(wanted, bool) else None
        if reqs is None:
            raise WakaQError(f"ssl_cert_reqs must be 'required' or 'none', got {ssl_cert_reqs!r}")
        if reqs != "required":
            options["ssl_cert_reqs"] = reqs
    if options and not is_tls_url(url):
        names = ", ".join(options)
        raise WakaQError(f"{names} need a rediss:// url (or ssl=True), got {redact_url(url)!r}")
    return options


def redis_py_kwargs(app: RedisSettings) -> dict[str, Any]:
    """Keyword arguments for `redis.Redis.from_url(app.url, ...)`: timeouts, health checks and TLS."""
    kwargs: dict[str, Any] = {
        "socket_timeout": app.socket_timeout,
        "socket_connect_timeout": app.socket_connect_timeout,
        "health_check_interval": int(app.health_check_interval or 0),
    }
    if is_tls_url(app.url):
        tls = app.tls_options
        kwargs["ssl_ca_certs"] = tls.get("ssl_ca_certs")
        kwargs["ssl_certfile"] = tls.get("ssl_certfile")
        kwargs["ssl_keyfile"] = tls.get("ssl_keyfile")
        if tls.get("ssl_cert_reqs") == "none":
            kwargs["ssl_cert_reqs"] = "none"
            kwargs["ssl_check_hostname"] = False
        else:
            kwargs["ssl_cert_reqs"] = "required"
            kwargs["ssl_check_hostname"] = True
    return kwargs


def redis_py_client(app: RedisSettings, **extra: Any) -> redis.Redis:
    """The app's redis-py client: `redis.Redis` for a single Redis, `redis.RedisCluster` for a `redis+cluster://`
    URL (it follows MOVED/ASK and topology changes itself). `extra` goes to the constructor (e.g. `retry=`).

    NOTE: typed as `redis.Redis`: the commands wakaq uses (and pipelines) exist on both."""
    # NOTE: redis-py is imported here (wakaq.sentinel, redis.cluster), so worker children never load it
    kwargs = {**redis_py_kwargs(app), **extra}
    if not is_cluster_url(app.url):
        from wakaq.sentinel import client_for

        return client_for(app.url, **kwargs)
    from redis.cluster import ClusterNode, RedisCluster

    parts = urlsplit(app.url)
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    if parts.password is not None:
        kwargs["password"] = unquote(parts.password)
    if is_tls_url(app.url):
        kwargs["ssl"] = True
    nodes = [ClusterNode(host, port) for host, port in cluster_nodes(app.url)]
    client: Any = RedisCluster(startup_nodes=nodes, **kwargs)
    return client  # type: ignore[no-any-return]


# ---- describing failures --------------------------------------------------------------------------------------


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _chain(e: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = e
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_config_failure(text: str) -> bool:
    """A failure a human must fix (credentials, TLS setup) rather than an outage that passes."""
    return text.startswith(("redis authentication failed", "redis TLS handshake failed"))


def describe_redis_error(e: BaseException, url: str | None = None) -> str:
    """One line naming the kind of failure: `redis authentication failed: ...`, `redis TLS handshake failed: ...`,
    `redis timed out: ...`, `redis unavailable: ...` or `redis error: ...`. The Rust broker's messages (BrokerError)
    are classified already and kept as they are."""
    text = _one_line(e)
    if isinstance(e, BrokerError):
        return text
    # NOTE: redis-py and ssl are looked up, not imported: an error from them means they are loaded already.
    redis: Any = sys.modules.get("redis")
    ssl_module: Any = sys.modules.get("ssl")
    chain = _chain(e)
    ssl_errors = (ssl_module.SSLError,) if ssl_module is not None else ()
    if (redis is not None and isinstance(e, redis.AuthenticationError)) or any(
        marker in text for marker in ("WRONGPASS", "NOAUTH", "invalid username-password", "Authentication required")
    ):
        return f"redis authentication failed: {text}"
    tls = [c for c in chain if isinstance(c, ssl_errors) or "[SSL" in str(c) or "handshake" in str(c).lower()]
    if tls:
        detail = _one_line(tls[0])
        if isinstance(tls[0], TimeoutError) or "timed out" in detail:
            detail += " (is that a plain redis:// port?)"
        elif "CERTIFICATE_VERIFY_FAILED" in detail:
            detail += " (set ssl_ca_certs to the CA that signed the server's certificate)"
        return f"redis TLS handshake failed: {detail}"
    if isinstance(e, TimeoutError) or (redis is not None and isinstance(e, redis.TimeoutError)):
        return f"redis timed out: {text}"
    if isinstance(e, OSError) or (redis is not None and isinstance(e, redis.ConnectionError)):
        hint = ""
        if url is not None and not is_tls_url(url) and ("closed by server" in text or "reset by peer" in text):
            hint = PLAIN_TO_TLS_HINT
        return f"redis unavailable: {text}{hint}"
    return f"redis error: {text}"
