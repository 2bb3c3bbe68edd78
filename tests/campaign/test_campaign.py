"""The randomized fault campaign (issue 19): every feature and every fault over 2-3 real worker daemons on a real
(AOF) redis-server, then the oracle. Off unless WAKAQ_CAMPAIGN=1 (`make campaign-short`, `make campaign`); the
switches are in tests/campaign/settings.py. A failing run prints its seed: WAKAQ_CAMPAIGN_SEED=<seed> runs it again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.campaign.campaign import run
from tests.campaign.settings import from_env
from tests.redis_server import in_ci, redis_available

pytestmark = [
    pytest.mark.skipif(not os.environ.get("WAKAQ_CAMPAIGN"), reason="the campaign runs with WAKAQ_CAMPAIGN=1"),
    pytest.mark.timeout(float(os.environ.get("WAKAQ_CAMPAIGN_SECONDS") or 120) + 240),
    pytest.mark.slow,
]


def test_campaign(tmp_path: Path) -> None:
    if not redis_available():
        if in_ci():
            pytest.fail("redis-server is missing; CI must install it")
        pytest.skip("redis-server is not installed")
    settings = from_env()
    print(f"\ncampaign {settings.describe()}", flush=True)
    verdict, report = run(settings, tmp_path)
    print(report, flush=True)
    assert verdict.ok, report
