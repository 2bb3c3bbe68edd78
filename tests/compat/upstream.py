"""WakaQ 4.0.4's side of the compatibility tests, run in its own venv: `python -m tests.compat.upstream <command>`.

- `produce FIRST COUNT [--eta SECONDS]`: tasks FIRST..FIRST+COUNT-1 sent with WakaQ's `.delay()` (odd ones to
  queue "high"); with `--eta`, due that many seconds from now.
- `broadcast ID`: WakaQ's `.broadcast()` of task ID; prints how many daemons received it.
- `serialize FIRST COUNT`: WakaQ's own payloads of those tasks, one JSON line each: the queue form (with `retry`)
  and the eta/broadcast form (without), as text.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

from wakaq.serializer import serialize  # NOTE: WakaQ 4.0.4's

from tests.compat import values
from tests.compat.wakaq_app import record


def produce(first: int, count: int, eta: float | None) -> None:
    for i in range(first, first + count):
        args, kwargs = values.arguments(i)
        queue = "high" if i % 2 else None
        if eta is None:
            record.delay(*args, queue=queue, **kwargs)
        else:
            record.delay(*args, queue=queue, eta=timedelta(seconds=eta), **kwargs)


def payloads(first: int, count: int) -> None:
    for i in range(first, first + count):
        args, kwargs = values.arguments(i)
        # NOTE: WakaQ passes the *args tuple as it came; the serializer writes it as an array
        queued = serialize({"name": "record", "args": tuple(args), "kwargs": kwargs, "retry": 0})
        later = serialize({"name": "record", "args": tuple(args), "kwargs": kwargs})
        print(json.dumps({"queued": queued, "later": later}))


def main(argv: list[str]) -> None:
    command, rest = argv[0], argv[1:]
    if command == "produce":
        eta = float(rest[3]) if len(rest) > 3 and rest[2] == "--eta" else None
        produce(int(rest[0]), int(rest[1]), eta)
    elif command == "broadcast":
        args, kwargs = values.arguments(int(rest[0]))
        print(record.broadcast(*args, **kwargs))
    elif command == "serialize":
        payloads(int(rest[0]), int(rest[1]))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
