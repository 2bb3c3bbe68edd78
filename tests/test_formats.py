"""`WakaQ(payload_format="json")`: WakaQ 4.0.4's JSON payloads from every producer path (wakaq/formats.py, Rust
`codec/json_encode.rs`). Against the real WakaQ package: tests/test_wakaq_compat.py; here the stdlib `json` is the
oracle for plain values, and the pushes are read back from a real Redis."""

from __future__ import annotations

import enum
import json
import math
import random
import struct
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest
import redis

from wakaq import WakaQ
from wakaq._wakaq import decode_task, encode_task, encode_task_json
from wakaq.exceptions import WakaQError

pytestmark = pytest.mark.app("tests.apps.compat_app")


def dumped(args: list[Any], kwargs: dict[str, Any], retry: int | None = 0) -> bytes:
    """The stdlib's bytes for a payload of plain values (what WakaQ's serializer gives for them)."""
    payload: dict[str, Any] = {"name": "t", "args": args, "kwargs": kwargs}
    if retry is not None:
        payload["retry"] = retry
    return json.dumps(payload).encode()


def test_plain_values_are_json_dumps_bytes() -> None:
    rng = random.Random(21)
    floats = [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(20000)]
    floats = [f for f in floats if math.isfinite(f)]
    floats += [rng.uniform(-1e6, 1e6) for _ in range(5000)] + [10.0**e for e in range(-30, 30)] + [5e-324, -0.0]
    for f in floats:
        assert encode_task_json("t", [f], {}, 0) == dumped([f], {}), repr(f)
    texts = ["".join(chr(rng.choice([rng.randrange(0x20, 0x7F), rng.randrange(0, 0xD800)])) for _ in range(20))]
    texts += ["".join(chr(rng.randrange(0xE000, 0x110000)) for _ in range(8)) for _ in range(200)]
    ints = [0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**200), 10**80 + 7]
    values: list[Any] = [*texts, *ints, None, True, False, [], {}, [[]], {"a": [1, {"b": None}]}, "\x7f\x00\u2028"]
    for v in values:
        assert encode_task_json("t", [v], {"k": v}) == dumped([v], {"k": v}, None), repr(v)


class Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        ((1, "x"), [1, "x"]),
        ({3, 1, 2}, [1, 2, 3]),
        (frozenset({"b", "a"}), ["a", "b"]),
        (bytearray(b"\x00x"), b"\x00x"),
        (Color.RED, 1),
        (
            datetime(2024, 6, 1, 12, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=-3))),
            datetime(2024, 6, 1, 15, 0, 0, 999_999),
        ),
        (datetime(2024, 11, 3, 1, 30, fold=1), datetime(2024, 11, 3, 1, 30, fold=1)),
        (date(1, 1, 1), date(1, 1, 1)),
        (timedelta(days=-5, microseconds=1), timedelta(days=-5, microseconds=1)),
        (Decimal("-0.000"), Decimal("-0.000")),
        (Decimal("NaN"), Decimal("NaN")),
        (b"", b""),
    ],
)
def test_values_read_back_as_a_task_receives_them(sent: Any, received: Any) -> None:
    name, args, kwargs, retry = decode_task(encode_task_json("t", [sent], {"v": sent}, 3))
    assert (name, retry) == ("t", 3)
    for got in (args[0], kwargs["v"]):
        if isinstance(received, Decimal) and received.is_nan():
            assert got.is_nan()
        else:
            assert got == received and type(got) is type(received)
            assert getattr(got, "fold", 0) == getattr(received, "fold", 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([1, float("nan")], "args[1]: nan has no JSON form"),
        ([{"a": [float("-inf")]}], "args[0]['a'][0]: -inf has no JSON form"),
        ([{1: "x"}], "a dict key in args[0][1]: 'int' is not a str"),
        ([{"__class__": "Decimal", "value": "1"}], "a dict key in args[0]['__class__']: a '__class__' key"),
        ([object()], "args[0]: unsupported type 'object'"),
        (["\ud800"], "args[0]: str holds a lone surrogate"),
    ],
)
def test_what_wakaqs_json_cannot_carry_is_refused(args: list[Any], message: str) -> None:
    with pytest.raises(TypeError, match=r"^cannot encode " + message.replace("[", r"\[").replace("]", r"\]")):
        encode_task_json("t", args, {})


def test_nesting_is_bounded_as_in_msgpack() -> None:
    nested: list[Any] = []
    nested.append(nested)
    with pytest.raises(TypeError, match="nesting deeper than 128"):
        encode_task_json("t", nested, {})
    deepest: Any = timedelta(1)  # NOTE: a class object counts as the JSON containers it writes (two here)
    for _ in range(126):
        deepest = [deepest]
    decode_task(encode_task_json("t", deepest, {}))
    with pytest.raises(TypeError, match="nesting deeper than 128"):
        encode_task_json("t", [deepest], {})


def test_features_that_need_meta_are_refused_by_name(redis_url: str) -> None:
    def app(**options: Any) -> WakaQ:
        return WakaQ(queues=["q"], url=redis_url, payload_format="json", **options)

    with pytest.raises(WakaQError, match='payload_format must be "msgpack" or "json", got \'xml\''):
        WakaQ(queues=["q"], payload_format="xml")
    with pytest.raises(WakaQError, match=r'^store_results=True needs payload_format="msgpack"'):
        app(store_results=True)
    with pytest.raises(WakaQError, match=r'^retry_on needs payload_format="msgpack"'):
        app(retry_on=[ValueError])
    plain = app()
    for option, feature in (
        ({"store_results": True}, "store_results"),
        ({"unique_for": 60}, "unique_for"),
        ({"retry_on": [KeyError]}, "retry_on"),
    ):
        with pytest.raises(WakaQError, match=rf"^{feature} \(task 'f'\) needs payload_format=\"msgpack\""):

            @plain.task(**option)
            def f() -> None: ...

    @plain.task(rate_limit="10/s", max_retries=2, retry_backoff=1)
    def g() -> None: ...

    with pytest.raises(WakaQError, match=r'^unique_key needs payload_format="msgpack"'):
        g.delay_with_options(unique_key="k")
    with pytest.raises(TypeError, match=r"cannot carry meta \(id, results\)"):
        plain.broker.push("q", "g", [], {}, 0, {"id": "x", "results": 5})


def test_every_push_of_a_json_app_is_wakaqs_json(app: ModuleType, rclient: redis.Redis) -> None:
    task = app.json_record
    task.delay(1, when=date(2024, 1, 2))
    task.delay_many([([2], {}), ([3], {"x": b"\x01"})])
    task.delay_with_options([4], {}, queue="high")
    task.delay(5, eta=timedelta(hours=1))
    assert rclient.lrange("wakaq:default", 0, -1) == [
        dumped_task([1], {"when": {"__class__": "date", "year": 2024, "month": 1, "day": 2}}),
        dumped_task([2], {}),
        dumped_task([3], {"x": {"__class__": "bytes", "value": "AQ=="}}),
    ]
    assert rclient.lrange("wakaq:high", 0, -1) == [dumped_task([4], {})]
    assert rclient.zrange("wakaq:eta:default", 0, -1) == [dumped_task([5], {}, None)]
    # the default app still writes msgpack
    app.record.delay(6)
    assert rclient.rpop("wakaq:default") == encode_task("record", [6], {}, 0)


def dumped_task(args: list[Any], kwargs: dict[str, Any], retry: int | None = 0) -> bytes:
    payload: dict[str, Any] = {"name": "record", "args": args, "kwargs": kwargs}
    if retry is not None:
        payload["retry"] = retry
    return json.dumps(payload).encode()


def test_a_json_broadcast_is_wakaqs_publish(app: ModuleType, rclient: redis.Redis) -> None:
    pubsub = rclient.pubsub()
    pubsub.subscribe("wakaq-broadcast")
    try:
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        assert app.json_record.broadcast(7, k="v") == 1
        message = pubsub.get_message(timeout=5)
        assert message is not None and message["data"] == dumped_task([7], {"k": "v"}, None)
    finally:
        pubsub.close()


def test_the_scheduler_and_eager_mode_use_the_apps_format(app: ModuleType, redis_url: str) -> None:
    from wakaq.scheduler import build_entries

    (entry,) = build_entries(app.json_app)
    assert entry.element == encode_task_json("record", entry.cron.args, entry.cron.kwargs, 0)
    inline = WakaQ(queues=["q"], url=redis_url, payload_format="json", eager=True)

    @inline.task
    def echo(*args: Any) -> list[Any]:
        return list(args)

    assert echo.delay((1, 2), {3}) == [[1, 2], [3]]
    with pytest.raises(TypeError, match="nan has no JSON form"):
        echo.delay(float("nan"))
