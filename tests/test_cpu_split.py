"""`benches/e2e/cpu_split.py` (`make bench-bounds`, the CPU split behind the missed targets) runs end to end on a
small N: every section present, every figure measured (a broken measurement prints nothing or raises)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.redis_server import in_ci, redis_available

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_cpu_split_measures_every_section(tmp_path: Path) -> None:
    if not redis_available():
        if in_ci():
            pytest.fail("redis-server is missing; CI must install it (.ci/run does)")
        pytest.skip("redis-server is not installed")
    out = tmp_path / "bounds.md"
    script = ROOT / "benches" / "e2e" / "cpu_split.py"
    done = subprocess.run(
        [sys.executable, str(script), "--n", "1000", "--idle", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    for heading in ("## drain-io and its floor", "## enqueue and its floors", "## one round trip", "## an idle daemon"):
        assert heading in text, text
    drain = re.search(r"\| wakaq drain-io \(2 children\) \| ([\d,]+) \| ([\d.]+) \|", text)
    assert drain and int(drain[1].replace(",", "")) > 0 and float(drain[2]) > 0, text
    assert re.search(r"\| single \.delay\(\) \(wakaq\) \| [\d,]+ \| [\d.]+ \| [\d.]+ \|", text), text
    assert re.search(r"\| another core kept busy \(a spinning process\) \| [\d.]+ \| [\d.]+ \|", text), text
    assert "blpop" in text  # the idle children's waits were seen by MONITOR
