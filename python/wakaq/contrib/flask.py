"""Flask: every task of a WakaQ app runs inside a Flask app's context (`current_app`, `g`, and the extensions that
set up or tear down with it, such as Flask-SQLAlchemy's session).

    flask_app = Flask(__name__)
    wakaq = WakaQ(queues=["default"])
    WakaQFlask(flask_app, wakaq)  # or, in an app factory: ext = WakaQFlask(); ext.init_app(flask_app, wakaq)

The module the worker imports (`wakaq-worker --app mymodule.wakaq`) must create the Flask app and call `init_app`,
so every child has it. One app context per task: `g` starts empty for each task and `teardown_appcontext` handlers
run when it ends, as after a request. A task called where this Flask app's context is already active (eager mode
inside a view, a direct call) runs in that context instead of a new one.

NOTE: the wrapper is `async def`, so one wrapper serves sync and async tasks alike (a sync wrapper cannot wrap an
async task, wakaq.invoke). A sync task then runs as a step of the child's event loop, watched as a sync task as
before; it costs an asyncio task per call (tens of microseconds), small next to what a Flask app context costs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import flask

from wakaq.exceptions import WakaQError

if TYPE_CHECKING:
    from wakaq.app import WakaQ

__all__ = ["WakaQFlask", "init_app"]

#: the key of `flask_app.extensions` that holds the WakaQ app (views find it as `current_app.extensions["wakaq"]`)
EXTENSION_KEY = "wakaq"
#: the attribute that marks our wrapper in `wakaq.task_wrappers` with the Flask app it pushes
_MARK = "wakaq_flask_app"


class WakaQFlask:
    """The Flask extension: `WakaQFlask(flask_app, wakaq)`, or `WakaQFlask(wakaq=wakaq)` then `init_app(flask_app)`."""

    def __init__(self, flask_app: flask.Flask | None = None, wakaq: WakaQ | None = None) -> None:
        self.wakaq = wakaq
        if flask_app is not None:
            self.init_app(flask_app)

    def init_app(self, flask_app: flask.Flask, wakaq: WakaQ | None = None) -> None:
        """Run every task of `wakaq` (else the one given to the constructor) inside `flask_app`'s context."""
        wakaq = wakaq if wakaq is not None else self.wakaq
        if wakaq is None:
            raise WakaQError("WakaQFlask.init_app needs a WakaQ app: WakaQFlask(flask_app, wakaq) or init_app(app, wq)")
        self.wakaq = wakaq
        init_app(flask_app, wakaq)


def init_app(flask_app: flask.Flask, wakaq: WakaQ) -> None:
    """Run every task of `wakaq` inside `flask_app`'s context. Calling it again with the same pair does nothing; a
    WakaQ app bound to another Flask app is a WakaQError (a task runs in one app context)."""
    bound = _bound_app(wakaq.task_wrappers)
    if bound is flask_app:
        return
    if bound is not None:
        raise WakaQError(f"{wakaq!r} already runs its tasks in Flask app {bound.name!r}, not {flask_app.name!r}")
    wakaq.wrap_tasks_with(_context_wrapper(flask_app))
    flask_app.extensions[EXTENSION_KEY] = wakaq


def _bound_app(wrappers: Sequence[Callable[..., Any]]) -> flask.Flask | None:
    for wrapper in wrappers:
        found = getattr(wrapper, _MARK, None)
        if found is not None:
            return found  # type: ignore[no-any-return]
    return None


def _context_wrapper(flask_app: flask.Flask) -> Callable[..., Any]:
    """The task wrapper that pushes `flask_app`'s context around each call (wakaq.invoke's wrapper signature)."""

    async def in_app_context(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if _is_active(flask_app):
            return await _call(fn, args, kwargs)
        with flask_app.app_context():
            return await _call(fn, args, kwargs)

    setattr(in_app_context, _MARK, flask_app)
    return in_app_context


async def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The inner call: awaited when it is a coroutine function (an async task or an async wrapper inside)."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    return fn(*args, **kwargs)


def _is_active(flask_app: flask.Flask) -> bool:
    """This Flask app's context is the current one already."""
    return flask.has_app_context() and flask.current_app._get_current_object() is flask_app  # type: ignore[attr-defined]
