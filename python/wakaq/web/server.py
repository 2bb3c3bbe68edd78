"""`wakaq-web --app mod.attr [--host H] [--port P] [--password PW | --no-auth]`: serve the dashboard with waitress.

waitress: pure Python, no dependencies of its own, maintained (Pylons), a thread pool with bounded request sizes
and slow-client handling, so the dashboard can face a network when it must (with a password). It is an optional
extra (`wakaq-rs[web]`); the worker never imports it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from typing import TYPE_CHECKING, Any

from wakaq.exceptions import WakaQError
from wakaq.web import security

if TYPE_CHECKING:
    from wakaq.app import WakaQ

log = logging.getLogger("wakaq.web")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9191
PASSWORD_ENV = "WAKAQ_WEB_PASSWORD"
THREADS = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    parser.add_argument(
        "--password",
        default=os.environ.get(PASSWORD_ENV),
        help=f"require HTTP basic auth with this password (any user name); default ${PASSWORD_ENV}",
    )
    parser.add_argument(
        "--no-auth", action="store_true", help="allow binding a non-loopback address without a password"
    )


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def run_web(app: WakaQ, args: argparse.Namespace) -> int:
    """Check the bind, connect to Redis, serve until SIGINT/SIGTERM (exit 0)."""
    problem = security.check_bind(args.host, args.password, args.no_auth)
    if problem is not None:
        raise WakaQError(problem)
    try:
        import waitress  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        raise WakaQError("the dashboard needs waitress: pip install 'wakaq-rs[web]'") from None
    from wakaq.admin import connect
    from wakaq.web.history import History
    from wakaq.web.wsgi import Dashboard

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    r = connect(app)
    r.ping()  # NOTE: a wrong URL or password fails now, with the commands' usual one-line error and exit code 3
    history = History(app, r)
    history.sample()
    dashboard = Dashboard(
        app,
        r,
        history,
        password=args.password,
        host_check=args.password is None and security.is_loopback_host(args.host),
    )
    server = _server(dashboard, args.host, args.port)
    history.start()
    auth = "basic auth" if args.password is not None else "no authentication"
    print(f"wakaq-web: dashboard at {url_of(args.host, _port(server))} ({auth})", flush=True)
    _stop_on_sigterm()
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        history.stop()
        server.close()
        r.close()
    return 0


def _server(dashboard: Any, host: str, port: int) -> Any:
    from waitress.server import create_server  # type: ignore[import-untyped]

    try:
        return create_server(
            dashboard, host=host, port=port, threads=THREADS, ident="wakaq-web", max_request_body_size=1 << 20
        )
    except OSError as e:
        raise WakaQError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def _port(server: Any) -> int:
    return int(getattr(server, "effective_port", 0) or server.socket.getsockname()[1])


def _stop_on_sigterm() -> None:
    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
