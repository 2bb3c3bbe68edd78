"""Logging for worker children and the scheduler, in WakaQ's formats (the task name in lines logged by a task)."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import IO, Any

LOG_FORMAT = "[%(asctime)s] %(levelname)s: %(message)s"
TASK_LOG_FORMAT = "[%(asctime)s] %(levelname)s in %(task)s: %(message)s"

#: name of the task running in this context (a ContextVar, so concurrent async tasks each see their own)
current_task_name: ContextVar[str | None] = ContextVar("wakaq_current_task_name", default=None)


class Formatter(logging.Formatter):
    """Switches to the task format while a task runs; UTC times like the Rust parent's lines."""

    converter = __import__("time").gmtime

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)
        self._task_formatter = logging.Formatter(TASK_LOG_FORMAT)
        self._task_formatter.converter = self.converter

    def format(self, record: logging.LogRecord) -> str:
        task = current_task_name.get()
        if task is not None:
            record.task = task
            return self._task_formatter.format(record)
        return super().format(record)


def setup_logging(level: int | str, stream: IO[str] | None = None, file: str | None = None) -> logging.Logger:
    """Configure the `wakaq` logger (and the root logger, so task loggers land in the same place)."""
    handler: logging.Handler
    if file:
        handler = logging.FileHandler(file, encoding="utf8")
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(Formatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logger = logging.getLogger("wakaq")
    logger.setLevel(level)
    logging.getLogger("asyncio").setLevel(max(logging.WARNING, level_number(level)))
    logging.captureWarnings(True)
    return logger


def level_number(level: Any) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(str(level).upper())
    return number if isinstance(number, int) else logging.INFO
