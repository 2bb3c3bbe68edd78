"""The dashboard as a plain WSGI application: routing, guards (security.py), JSON replies, static files.

NOTE: no web framework: a dozen routes, one HTML shell and three static files do not need one, and every header
(CSP, auth, CSRF) stays visible here. Served by waitress (server.py).
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from wakaq.web import security
from wakaq.web.api import Api, ApiError

if TYPE_CHECKING:
    import redis

    from wakaq.app import WakaQ
    from wakaq.web.history import History

log = logging.getLogger("wakaq.web")

MAX_BODY = 16 * 1024
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATIC_TYPES = {
    "app.js": "text/javascript; charset=utf-8",
    "workflows.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}

StartResponse = Callable[..., Any]


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def json_response(value: Any, status: int = 200) -> Response:
    text = json.dumps(_finite(value), default=_json_default, ensure_ascii=False, separators=(",", ":"))
    return Response(status, text.encode(), "application/json; charset=utf-8", [("Cache-Control", "no-store")])


def _finite(value: Any) -> Any:
    """JSON has no NaN or Infinity: they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def _static(name: str) -> bytes:
    return resources.files("wakaq.web").joinpath("static").joinpath(name).read_bytes()


class Dashboard:
    """WSGI callable. `password` None means no authentication; `host_check` enables the DNS-rebinding guard."""

    def __init__(
        self,
        app: WakaQ,
        r: redis.Redis,
        history: History,
        *,
        password: str | None,
        host_check: bool,
        token: str | None = None,
    ) -> None:
        self.app, self.r = app, r
        self.api = Api(app, r, history)
        self.password = password
        self.host_check = host_check
        self.token = token or security.new_token()
        self.static = {name: _static(name) for name in STATIC_TYPES}
        self.index = self._index()
        self.gets: dict[str, Callable[[dict[str, str]], Response]] = {
            "/": lambda p: Response(200, self.index, "text/html; charset=utf-8", [("Cache-Control", "no-store")]),
            "/api/overview": lambda p: json_response(self.api.overview(p)),
            "/api/daemons": lambda p: json_response(self.api.daemons(p)),
            "/api/history": lambda p: json_response(self.api.per_minute(p)),
            "/api/failed": lambda p: json_response(self.api.failed(p)),
            "/api/eta": lambda p: json_response(self.api.eta(p)),
            "/api/schedules": lambda p: json_response(self.api.schedules(p)),
            "/api/workflows": lambda p: json_response(self.api.workflows(p)),
            "/api/workflow": lambda p: json_response(self.api.workflow(p)),
            "/metrics": lambda p: self._metrics(),
        }
        self.posts: dict[str, Callable[[dict[str, Any]], Response]] = {
            "/api/failed/requeue": lambda b: json_response(self.api.failed_action("requeue", b)),
            "/api/failed/drop": lambda b: json_response(self.api.failed_action("drop", b)),
            "/api/queues/pause": lambda b: json_response(self.api.pause_action(True, b)),
            "/api/queues/resume": lambda b: json_response(self.api.pause_action(False, b)),
            "/api/workflow/cancel": lambda b: json_response(self.api.workflow_cancel(b)),
        }

    def _index(self) -> bytes:
        text = _static("index.html").decode()
        text = text.replace("{{token}}", html.escape(self.token, quote=True))
        text = text.replace("{{prefix}}", html.escape(self.app.keys.prefix, quote=True))
        return text.encode()

    # ---- WSGI -----------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            response = self.handle(environ)
        except ApiError as e:
            response = error(e.status, str(e))
        except Exception as e:
            response = self._failure(e)
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *security.SECURITY_HEADERS,
            *response.headers,
        ]
        start_response(f"{response.status} {REASONS.get(response.status, '')}".strip(), headers)
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else response.body]

    def _failure(self, e: Exception) -> Response:
        import redis

        if isinstance(e, redis.RedisError | OSError):
            return error(503, f"Redis: {type(e).__name__}: {e}".splitlines()[0])
        log.exception("request failed")
        return error(500, "internal error (see the wakaq-web log)")

    def handle(self, environ: dict[str, Any]) -> Response:
        if self.host_check and not security.host_is_loopback_name(environ):
            return error(403, "Host header is not a loopback address (DNS rebinding guard)")
        if self.password is not None and not security.check_basic_auth(environ, self.password):
            return Response(
                401,
                b'{"error":"authentication required"}',
                "application/json",
                [("WWW-Authenticate", 'Basic realm="wakaq", charset="UTF-8"')],
            )
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/") or "/"
        if path.startswith("/static/"):
            return self._static_file(method, path[len("/static/") :])
        if path in self.gets:
            if method not in ("GET", "HEAD"):
                return Response(405, b'{"error":"use GET"}', headers=[("Allow", "GET, HEAD")])
            params = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
            return self.gets[path](params)
        if path in self.posts:
            if method != "POST":
                return Response(405, b'{"error":"use POST"}', headers=[("Allow", "POST")])
            return self.posts[path](self._post_body(environ))
        return error(404, f"no page {path!r}")

    def _static_file(self, method: str, name: str) -> Response:
        if name not in self.static:
            return error(404, "no such file")
        if method not in ("GET", "HEAD"):
            return Response(405, b'{"error":"use GET"}', headers=[("Allow", "GET, HEAD")])
        return Response(200, self.static[name], STATIC_TYPES[name], [("Cache-Control", "no-cache")])

    def _post_body(self, environ: dict[str, Any]) -> dict[str, Any]:
        problem = security.csrf_problem(environ, self.token)
        if problem is not None:
            raise ApiError(403, problem)
        if not security.content_type_is_json(environ):
            raise ApiError(415, "expected Content-Type: application/json")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            raise ApiError(413, f"request body must be at most {MAX_BODY} bytes")
        try:
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        except ValueError:
            raise ApiError(400, "the request body is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return body

    def _metrics(self) -> Response:
        from wakaq.metrics import render_metrics

        return Response(200, render_metrics(self.app, self.r).encode(), METRICS_TYPE, [("Cache-Control", "no-store")])
