"""Loads a wheel's `_wakaq` extension alone (no wakaq package, no dependencies) and round-trips a payload of every
codec type; prints the machine, the Python and the result. For wheels of another architecture, run under qemu by
scripts/debian-arm64.sh (`make wheel-aarch64`)."""

from __future__ import annotations

import importlib.util
import platform
import sys
from datetime import date, datetime, timedelta
from decimal import Decimal

ARGS = [1, "x", {"a": [1.5, None, True]}, datetime(2026, 12, 7, 15, 4, 5, 987654), date(2026, 1, 2)]
ARGS += [timedelta(days=1, seconds=2, microseconds=3), Decimal("0.10"), 2**80, b"\x00bytes"]


def main(path: str) -> int:
    spec = importlib.util.spec_from_file_location("_wakaq", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    decoded = module.decode_task(module.encode_task("task", ARGS, {"k": "v"}, 0))
    assert decoded == ("task", ARGS, {"k": "v"}, 0), decoded
    print(f"extension check: {platform.machine()}, Python {sys.version.split()[0]}, wakaq {module.__version__}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
