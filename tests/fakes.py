"""Test doubles for the native broker, to test the Python API before (and independently of) Redis."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from wakaq import WakaQ


class FakeBroker:
    """Records every call the API makes, with the real `_wakaq.Broker` signatures (tests/test_task.py checks
    that every method here has the same parameters as the native one)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def push(
        self,
        queue: str,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        retry: int = 0,
        meta: Mapping[str, Any] | None = None,
        *,
        replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> None:
        self.calls.append(("push", queue, name, tuple(args), dict(kwargs)))

    def push_eta(
        self,
        queue: str,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        due: float,
        meta: Mapping[str, Any] | None = None,
        *,
        replicas: int = 0,
        replica_timeout: float = 1.0,
        relative: bool = False,
    ) -> None:
        self.calls.append(("push_eta", queue, name, tuple(args), dict(kwargs), due, relative))

    def push_many(
        self,
        items: Sequence[Any],
        *,
        replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> int:
        self.calls.append(("push_many", list(items)))
        return len(items)

    def broadcast(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
        self.calls.append(("broadcast", name, tuple(args), dict(kwargs)))
        return 3


def install_fake_broker(app: WakaQ) -> FakeBroker:
    fake = FakeBroker()
    app._broker = fake  # type: ignore[assignment]
    app._broker_pid = os.getpid()
    return fake
