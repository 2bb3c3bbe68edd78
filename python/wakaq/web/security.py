"""The dashboard's guards: who may bind where, HTTP basic auth, CSRF for POSTs, Host checks and response headers.

Threat model: the dashboard can requeue and drop tasks, and shows task arguments (which may hold personal data).
- Binding: loopback addresses (127.0.0.0/8, ::1, names that resolve only to them) are reachable from this machine
  only; anything else (0.0.0.0, a LAN address) needs a password or an explicit `--no-auth`.
- DNS rebinding: a web page can make its own host name resolve to 127.0.0.1 and then read a loopback server as
  same-origin. Without a password the Host header must name a loopback address or `localhost`.
- CSRF: every mutating request is a POST with a JSON body, the per-process token in `X-CSRF-Token`, and an
  Origin (or, if a browser sends none, Referer) naming the host the request was sent to.
- XSS: the page builds its DOM with textContent only; the Content-Security-Policy forbids inline scripts,
  handlers and any other origin, so even a slip would not run.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

CSRF_HEADER = "HTTP_X_CSRF_TOKEN"
REALM = "wakaq"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
]


def new_token() -> str:
    """The per-process CSRF token: a restart invalidates open pages (they ask to reload)."""
    return secrets.token_urlsafe(32)


def is_loopback_host(host: str) -> bool:
    """True when every address `host` stands for is a loopback address (so only this machine can connect)."""
    name = host.strip("[]")
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    if not name:
        return False  # "" binds every interface
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def check_bind(host: str, password: str | None, no_auth: bool) -> str | None:
    """Why the server must not start with these options, or None when it may."""
    if password is not None and no_auth:
        return "--password (or WAKAQ_WEB_PASSWORD) and --no-auth exclude each other"
    if password == "":
        return "the password is empty; set a non-empty --password or WAKAQ_WEB_PASSWORD"
    if password is None and not no_auth and not is_loopback_host(host):
        return (
            f"binding {host!r} (not a loopback address) needs --password or WAKAQ_WEB_PASSWORD (HTTP basic auth), "
            "or --no-auth to serve without authentication"
        )
    return None


def check_basic_auth(environ: Mapping[str, object], password: str) -> bool:
    """HTTP basic auth: any user name, this password (compared in constant time)."""
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    _, sep, given = decoded.partition(":")
    return bool(sep) and hmac.compare_digest(given.encode(), password.encode())


def host_is_loopback_name(environ: Mapping[str, object]) -> bool:
    """The Host header names localhost or a loopback address (the DNS-rebinding guard)."""
    host = str(environ.get("HTTP_HOST", ""))
    name = urlsplit(f"//{host}").hostname or ""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _netloc(url: str) -> str:
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return ""


def csrf_problem(environ: Mapping[str, object], token: str) -> str | None:
    """Why a POST is refused as possibly cross-site, or None when it carries the token and comes from this host.

    NOTE: Origin (else Referer) must name the Host the request was sent to. The scheme is not compared: behind a
    TLS-terminating proxy the browser's origin is https while this server sees http."""
    given = str(environ.get(CSRF_HEADER, ""))
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        return "missing or wrong CSRF token (reload the page)"
    host = str(environ.get("HTTP_HOST", "")).lower()
    origin = str(environ.get("HTTP_ORIGIN", ""))
    if origin:
        return None if host and _netloc(origin) == host else f"cross-origin request from {origin[:100]!r} refused"
    referer = str(environ.get("HTTP_REFERER", ""))
    if referer and host and _netloc(referer) == host:
        return None
    return "request without Origin or Referer of this dashboard refused"


def content_type_is_json(environ: Mapping[str, object]) -> bool:
    """NOTE: a cross-site HTML form can only send form or text content types; JSON needs a CORS preflight."""
    return str(environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower() == "application/json"
