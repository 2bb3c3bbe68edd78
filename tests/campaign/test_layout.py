"""The campaign's own parts that need no processes: the key layout patterns and the switches (fast; always on)."""

from __future__ import annotations

import pytest

from tests.campaign import layout
from tests.campaign.settings import FAULTS, FEATURES, from_env
from wakaq.keys import Keys

QUEUES = ["high", "default", "limited"]
TASKS = ["plain", "throttled"]


@pytest.mark.parametrize("cluster", [False, True])
def test_every_documented_key_is_classified_as_itself(cluster: bool) -> None:
    k = Keys("wakaq", cluster)
    pats = layout.patterns("wakaq", QUEUES, TASKS, cluster)
    expected = {
        k.queue("default"): "queue",
        k.eta("high"): "eta",
        k.bell("limited"): "bell",
        k.bell("bcast:host-1:ab"): "bell",
        k.failed("default"): "failed",
        k.parked("limited", "throttled"): "parked",
        k.rate_queue("limited"): "rate_queue",
        k.rate_task("throttled"): "rate_task",
        k.result("0123abcd"): "result",
        k.result_ready("0123abcd"): "result_ready",
        k.unique("throttled:ff00"): "unique",
        k.inflight("host-1:ab"): "inflight",
        k.heartbeat("host-1:ab"): "heartbeat",
        k.daemon_info("host-1:ab"): "daemon_info",
        k.stats("host-1:ab"): "stats",
        k.stats_retired: "stats_retired",
        k.daemons: "daemons",
        k.schedule_slot("abc", 17): "schedule_slot",
    }
    for key, name in expected.items():
        hit = layout.classify(key, pats)
        assert hit is not None and hit[0].name == name, (key, hit)


def test_keys_outside_the_layout_are_stray() -> None:
    pats = layout.patterns("wakaq", QUEUES, TASKS)
    for key in ("wakaq:nosuchqueue", "wakaq:parked:default:nosuchtask", "other:default", "wakaq:rate:task:x"):
        assert layout.classify(key, pats) is None, key


def test_a_daemon_key_names_its_daemon() -> None:
    pats = layout.patterns("wakaq", QUEUES, TASKS)
    for key in ("wakaq:inflight:h-1:ab", "wakaq:failed:bcast:h-1:ab", "wakaq:bcast:h-1:ab"):
        hit = layout.classify(key, pats)
        assert hit is not None and layout.daemon_of(hit[1]) == "h-1:ab", key
    hit = layout.classify("wakaq:failed:default", pats)
    assert hit is not None and layout.daemon_of(hit[1]) is None


def test_switches() -> None:
    s = from_env({"WAKAQ_CAMPAIGN_SEED": "7", "WAKAQ_CAMPAIGN_FAULTS": "-skew,-unlimit"})
    assert s.seed == 7 and s.features == frozenset(FEATURES)
    assert s.faults == frozenset(FAULTS) - {"skew", "unlimit"}
    s = from_env({"WAKAQ_CAMPAIGN_PROFILE": "valid", "WAKAQ_CAMPAIGN_FAULTS": "sigstop", "WAKAQ_CAMPAIGN_FEATURES": ""})
    assert s.faults == {"sigstop"} and "garbage" not in s.features
    s = from_env({"WAKAQ_CAMPAIGN_FAULTS": "sigstop", "WAKAQ_CAMPAIGN_FEATURES": "none"})
    assert s.faults == {"sigstop"} and not s.features
    with pytest.raises(ValueError, match="unknown campaign faults"):
        from_env({"WAKAQ_CAMPAIGN_FAULTS": "meteor"})
    with pytest.raises(ValueError, match="unknown WAKAQ_CAMPAIGN_PROFILE"):
        from_env({"WAKAQ_CAMPAIGN_PROFILE": "nope"})
