"""`python multi.py COUNT COMMAND...`: run COUNT copies of COMMAND as one worker; SIGTERM/SIGINT go to all.

For systems whose worker is a single process (arq): the benchmark runs two, like every other system's two
worker processes. Exits when every copy has exited (with the first non-zero status, if any).
"""

from __future__ import annotations

import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    count, command = int(argv[0]), argv[1:]
    procs = [subprocess.Popen(command) for _ in range(count)]

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [proc.wait() for proc in procs]
    return next((c for c in codes if c), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
