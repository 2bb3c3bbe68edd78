"""The short soak (`benches/soak.py`): 30 s of mixed load with children SIGKILLed and a Redis restart; nothing lost.

The 10-minute version is `make soak` (not part of `make test`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.redis_server import in_ci, redis_available

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))

import soak  # noqa: E402

pytest.importorskip("psutil")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_short_soak_loses_nothing() -> None:
    if not redis_available():
        if in_ci():
            pytest.fail("redis-server is missing; CI must install it (.ci/run does)")
        pytest.skip("redis-server is not installed")
    result = soak.run(
        soak.Soak(seconds=30, rate=1_000, kill_every=5, restart_at=15, interval=5, drain_timeout=60, log=print)
    )
    final = result["final"]
    print(soak.markdown(result))
    assert final["kills"] >= 4 and final["redis_restarts"] == 1
    assert final["sent"] >= 20_000, final  # the producer kept (about) its rate through the outage
    assert final["lost"] == 0, final
    assert final["failed_recorded"] > 0, final  # the 1% that raise are recorded, not dropped
    # no growth trend in the parent beyond noise (children are killed and replaced, so they start afresh)
    assert soak.trend_mb(soak.parent_rss(result)) < 2.0, result["intervals"]
