"""Codec micro benchmarks: a WakaQ-shaped task payload, ours vs `json` (upstream's format) vs `msgpack`.

Off by default (`--benchmark-disable` in pyproject); run with `make bench PYTEST_ARGS=benches/test_codec_bench.py`.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import msgpack
import pytest

from wakaq._wakaq import decode_task, encode_task

NAME = "mytask"
ARGS = [123, "some string", {"a": 1.5, "b": [1, 2, 3]}, datetime(2024, 1, 2, 3, 4, 5, 678901)]
KWARGS = {"user_id": 42, "force": True, "label": "daily-report"}


def json_default(o):
    if isinstance(o, datetime):
        fields = ("year", "month", "day", "hour", "minute", "second", "microsecond", "fold")
        return {"__class__": "datetime", **{f: getattr(o, f) for f in fields}}
    raise TypeError(o)


def json_hook(obj):
    if obj.get("__class__") == "datetime":
        return datetime(**{k: v for k, v in obj.items() if k != "__class__"})
    return obj


def json_encode():
    return json.dumps({"name": NAME, "args": ARGS, "kwargs": KWARGS, "retry": 0}, default=json_default)


def json_decode(data):
    payload = json.loads(data, object_hook=json_hook)
    return payload["name"], payload["args"], payload["kwargs"], payload["retry"]


def msgpack_default(o):
    if isinstance(o, datetime):
        return msgpack.Timestamp.from_datetime(o.replace(tzinfo=timezone.utc))
    raise TypeError(o)


def msgpack_encode():
    return msgpack.packb({"name": NAME, "args": ARGS, "kwargs": KWARGS, "retry": 0}, default=msgpack_default)


def msgpack_decode(data):
    payload = msgpack.unpackb(data, timestamp=3)
    return payload["name"], payload["args"], payload["kwargs"], payload["retry"]


def wakaq_encode():
    return encode_task(NAME, ARGS, KWARGS, 0)


ENCODERS = {"wakaq": wakaq_encode, "json": json_encode, "msgpack": msgpack_encode}
DECODERS = {
    "wakaq": (decode_task, wakaq_encode),
    "json": (json_decode, json_encode),
    "msgpack": (msgpack_decode, msgpack_encode),
}


@pytest.mark.parametrize("codec", list(ENCODERS))
def test_encode(benchmark, codec):
    benchmark.group = "encode task payload"
    data = benchmark(ENCODERS[codec])
    assert len(data) > 0


@pytest.mark.parametrize("codec", list(DECODERS))
def test_decode(benchmark, codec):
    benchmark.group = "decode task payload"
    decode, encode = DECODERS[codec]
    name, args, kwargs, retry = benchmark(decode, encode())
    assert retry == 0
    assert name == NAME
    assert kwargs == KWARGS
    assert args[:3] == ARGS[:3]
