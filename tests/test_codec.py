"""The payload codec (rust/src/codec): round trips, determinism, the `msgpack` package as an oracle,
error messages, and hostile input."""

from __future__ import annotations

import base64
import collections
import enum
import json
import math
import os
import random
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal

import msgpack
import pytest

from wakaq._wakaq import decode_task, encode_task, packb, unpackb
from wakaq.exceptions import PayloadError

UTC = timezone.utc
PLUS_5_30 = timezone(timedelta(hours=5, minutes=30))
MINUS_8 = timezone(timedelta(hours=-8))


class Color(enum.IntEnum):
    RED = 1


class Name(str, enum.Enum):
    ALICE = "alice"


class MyFloat(float):
    pass


Point = collections.namedtuple("Point", "x y")


# ---- round trips ------------------------------------------------------------------------------------------

# (value, what decoding gives back)
ROUND_TRIPS = [
    (None, None),
    (True, True),
    (False, False),
    (0, 0),
    (-1, -1),
    (127, 127),
    (128, 128),
    (-33, -33),
    (2**63 - 1, 2**63 - 1),
    (-(2**63), -(2**63)),
    (2**64 - 1, 2**64 - 1),
    (2**64, 2**64),
    (-(2**63) - 1, -(2**63) - 1),
    (2**100, 2**100),
    (-(2**100), -(2**100)),
    (1.5, 1.5),
    (-0.0, -0.0),
    (float("inf"), float("inf")),
    (1e308, 1e308),
    ("", ""),
    ("héllo ✓ 𝄞", "héllo ✓ 𝄞"),
    ("x" * 70_000, "x" * 70_000),
    (b"", b""),
    (b"\x00\xff" * 200, b"\x00\xff" * 200),
    (bytearray(b"abc"), b"abc"),
    ([], []),
    ((), []),
    ({}, {}),
    ([1, [2, [3, [4, []]]]], [1, [2, [3, [4, []]]]]),
    ((1, (2, 3)), [1, [2, 3]]),
    ({"a": {"b": {"c": [1, {}]}}}, {"a": {"b": {"c": [1, {}]}}}),
    (
        {1: "int key", None: "nil key", 2.5: "float key", b"k": "bin key"},
        {1: "int key", None: "nil key", 2.5: "float key", b"k": "bin key"},
    ),
    (list(range(70_000)), list(range(70_000))),
    ({str(i): i for i in range(20)}, {str(i): i for i in range(20)}),
    (datetime(2024, 1, 2, 3, 4, 5, 678901), datetime(2024, 1, 2, 3, 4, 5, 678901)),
    (datetime(2024, 1, 2, 3, 4, 5, 999999), datetime(2024, 1, 2, 3, 4, 5, 999999)),
    (datetime(2024, 1, 2, 3, 4, 5, 500000), datetime(2024, 1, 2, 3, 4, 5, 500000)),
    (datetime(1970, 1, 1), datetime(1970, 1, 1)),
    (datetime(1969, 12, 31, 23, 59, 59, 999999), datetime(1969, 12, 31, 23, 59, 59, 999999)),
    (datetime(1, 1, 1), datetime(1, 1, 1)),
    (datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(9999, 12, 31, 23, 59, 59, 999999)),
    (datetime(1900, 6, 15, 12, 0, 0, 123), datetime(1900, 6, 15, 12, 0, 0, 123)),
    (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), datetime(2024, 1, 2, 3, 4, 5)),
    (datetime(2024, 1, 2, 8, 34, 5, 678901, tzinfo=PLUS_5_30), datetime(2024, 1, 2, 3, 4, 5, 678901)),
    (datetime(2023, 12, 31, 19, 4, 5, tzinfo=MINUS_8), datetime(2024, 1, 1, 3, 4, 5)),
    (date(2024, 2, 29), date(2024, 2, 29)),
    (date(1, 1, 1), date(1, 1, 1)),
    (date(9999, 12, 31), date(9999, 12, 31)),
    (timedelta(0), timedelta(0)),
    (timedelta(days=-3, seconds=5, microseconds=7), timedelta(days=-3, seconds=5, microseconds=7)),
    (timedelta.max, timedelta.max),
    (timedelta.min, timedelta.min),
    (timedelta(microseconds=-1), timedelta(microseconds=-1)),
    (Decimal("1.5E+10"), Decimal("1.5E+10")),
    (Decimal("-0.000123"), Decimal("-0.000123")),
    (Decimal("0"), Decimal("0")),
    (Decimal("-0"), Decimal("-0")),
    (Decimal("3.14159265358979323846264338327950288"), Decimal("3.14159265358979323846264338327950288")),
    (Decimal("Infinity"), Decimal("Infinity")),
    (Decimal("-Infinity"), Decimal("-Infinity")),
    (Color.RED, 1),
    (Name.ALICE, "alice"),
    (MyFloat(2.5), 2.5),
    (collections.OrderedDict([("b", 1), ("a", 2)]), {"b": 1, "a": 2}),
    (collections.defaultdict(list, {"k": [1]}), {"k": [1]}),
    (Point(1, 2), [1, 2]),
    ([datetime(2024, 1, 2), date(2024, 1, 2), timedelta(seconds=1), Decimal("1")], None),
]


@pytest.mark.parametrize(("value", "expected"), ROUND_TRIPS, ids=[repr(v)[:40] for v, _ in ROUND_TRIPS])
def test_round_trip(value, expected):
    expected = value if expected is None and value is not None else expected
    got = unpackb(packb(value))
    assert got == expected
    assert type(got) is type(expected)
    if isinstance(expected, float):
        assert math.copysign(1, got) == math.copysign(1, expected)
    if isinstance(expected, Decimal):
        assert str(got) == str(expected)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("-NaN"), Decimal("sNaN"), Decimal("NaN123")])
def test_decimal_nan_round_trips_by_its_str(value):
    """Decided: NaN decimals are encoded like any Decimal (their str()); they come back as the same NaN."""
    got = unpackb(packb(value))
    assert isinstance(got, Decimal)
    assert str(got) == str(value)
    assert got.is_nan()


def test_float_nan_round_trips():
    assert math.isnan(unpackb(packb(float("nan"))))


@pytest.mark.parametrize("value", [{1, 2, 3}, frozenset({"a", "b"}), set(), {("t", 1), None}])
def test_sets_arrive_as_lists(value):
    got = unpackb(packb(value))
    assert isinstance(got, list)
    assert len(got) == len(value)
    assert {tuple(x) if isinstance(x, list) else x for x in got} == set(value)


def test_naive_datetimes_are_utc_and_aware_ones_are_converted():
    aware = datetime(2024, 6, 1, 12, 0, tzinfo=PLUS_5_30)
    assert unpackb(packb(aware)) == aware.astimezone(UTC).replace(tzinfo=None)
    assert unpackb(packb(aware)).tzinfo is None
    assert packb(aware) == packb(datetime(2024, 6, 1, 6, 30))


# ---- determinism ------------------------------------------------------------------------------------------


def test_same_input_same_bytes():
    value = ["x", 1, {"b": [1.5, None], "a": datetime(2024, 1, 2, 3, 4, 5, 678901)}, Decimal("2.50")]
    assert packb(value) == packb(value)
    args, kwargs = [123, "s"], {"when": date(2024, 1, 1), "n": 1}
    assert encode_task("t", args, kwargs) == encode_task("t", list(args), dict(kwargs))


def test_dict_order_is_preserved():
    assert packb({"b": 1, "a": 2}) != packb({"a": 2, "b": 1})
    assert list(unpackb(packb({"b": 1, "a": 2, "c": 3}))) == ["b", "a", "c"]


def test_sets_encode_the_same_in_every_process():
    """str hashes are salted per process; set output must not depend on it (eta dedupe)."""
    code = "from wakaq._wakaq import packb; print(packb({'alpha', 'beta', 'gamma', 'delta', 1, 2.5}).hex())"
    outputs = set()
    for seed in ("1", "2", "3", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outputs.add(subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True).stdout)
    assert len(outputs) == 1


# ---- the msgpack package as an oracle ---------------------------------------------------------------------

PLAIN = [
    None,
    True,
    False,
    0,
    1,
    127,
    128,
    255,
    256,
    65_535,
    65_536,
    2**32 - 1,
    2**32,
    2**63 - 1,
    2**64 - 1,
    -1,
    -32,
    -33,
    -128,
    -129,
    -32_768,
    -32_769,
    -(2**31),
    -(2**31) - 1,
    -(2**63),
    0.0,
    1.5,
    -2.25,
    1e300,
    float("inf"),
    "",
    "a" * 31,
    "a" * 32,
    "a" * 255,
    "a" * 256,
    "a" * 65_535,
    "a" * 65_536,
    "ünïcødé",
    b"",
    b"x" * 31,
    b"x" * 255,
    b"x" * 256,
    b"x" * 65_536,
    [],
    list(range(15)),
    list(range(16)),
    list(range(65_536)),
    (1, 2),
    {},
    {str(i): i for i in range(15)},
    {str(i): i for i in range(16)},
    {"name": "task", "args": [1, "two", {"a": 1.5, "b": [1, 2, 3]}], "kwargs": {}},
]


@pytest.mark.parametrize("value", PLAIN, ids=[repr(v)[:30] for v in PLAIN])
def test_bytes_equal_msgpack_for_plain_types(value):
    assert packb(value) == msgpack.packb(value, use_bin_type=True)
    assert unpackb(msgpack.packb(value, use_bin_type=True)) == msgpack.unpackb(msgpack.packb(value), raw=False)


DATETIMES = [
    datetime(2024, 1, 2, 3, 4, 5, 678901),
    datetime(2024, 1, 2, 3, 4, 5, 999999),
    datetime(2024, 1, 2, 3, 4, 5, 537000),
    datetime(2024, 1, 2, 3, 4, 5),
    datetime(1970, 1, 1),
    datetime(1969, 12, 31, 23, 59, 59),
    datetime(1960, 5, 6, 7, 8, 9, 999999),
    datetime(1, 1, 1),
    datetime(9999, 12, 31, 23, 59, 59, 999999),
    datetime.fromtimestamp(2**32 - 1, UTC).replace(tzinfo=None),
    datetime.fromtimestamp(2**32, UTC).replace(tzinfo=None),
    datetime.fromtimestamp(2**32, UTC).replace(tzinfo=None, microsecond=999999),
    datetime.fromtimestamp(2**34 - 1, UTC).replace(tzinfo=None, microsecond=999999),
    datetime.fromtimestamp(2**34, UTC).replace(tzinfo=None),
    datetime.fromtimestamp(2**34 + 1, UTC).replace(tzinfo=None, microsecond=1),
]


@pytest.mark.parametrize("dt", DATETIMES, ids=str)
def test_datetimes_are_spec_timestamps(dt):
    aware = dt.replace(tzinfo=UTC)
    assert msgpack.unpackb(packb(dt), timestamp=3) == aware
    assert packb(dt) == msgpack.packb(aware, datetime=True)
    assert unpackb(msgpack.packb(aware, datetime=True)) == dt


@pytest.mark.parametrize(
    ("dt", "size"),
    [
        (datetime(2024, 1, 2, 3, 4, 5), 6),  # timestamp32
        (datetime(2024, 1, 2, 3, 4, 5, 678901), 10),  # timestamp64: sub-second above 0.5 s keeps its micros
        (datetime.fromtimestamp(2**32, UTC).replace(tzinfo=None), 10),
        (datetime(1969, 12, 31), 15),  # timestamp96
        (datetime.fromtimestamp(2**34, UTC).replace(tzinfo=None), 15),
    ],
)
def test_timestamp_width(dt, size):
    assert len(packb(dt)) == size


def test_known_timestamp64_bytes():
    """The case ormsgpack 1.13.1 gets wrong (it drops the microseconds)."""
    assert packb(datetime(2024, 1, 2, 3, 4, 5, 678901)).hex() == "d7ffa1dcd42065937d25"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (msgpack.packb(1.5, use_single_float=True), 1.5),
        (msgpack.packb(msgpack.Timestamp(5, 999_999_999)), datetime(1970, 1, 1, 0, 0, 5, 999999)),
        (msgpack.packb(msgpack.Timestamp(-1, 1_000)), datetime(1969, 12, 31, 23, 59, 59, 1)),
        (b"\xd9\x01a", "a"),  # str8 for a short string: valid, just not the smallest
        (b"\xcd\x00\x01", 1),  # uint16 for 1
        (b"\xd3\xff\xff\xff\xff\xff\xff\xff\xff", -1),  # int64 for -1
        (b"\xdc\x00\x01\xc0", [None]),  # array16
        (b"\xde\x00\x01\xa1k\x01", {"k": 1}),  # map16
    ],
)
def test_reads_what_other_writers_write(data, expected):
    assert unpackb(data) == expected


# ---- encode errors ----------------------------------------------------------------------------------------


class Custom:
    pass


def func():
    pass


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (object(), "cannot encode obj: unsupported type 'object'"),
        ([1, {"when": [object()]}], "cannot encode obj[1]['when'][0]: unsupported type 'object'"),
        ({"f": func}, "cannot encode obj['f']: unsupported type 'function'"),
        ([Custom()], "cannot encode obj[0]: unsupported type 'Custom'"),
        ((1, 2, 3j), "cannot encode obj[2]: unsupported type 'complex'"),
        ({1: [None, {2: range(3)}]}, "cannot encode obj[1][1][2]: unsupported type 'range'"),
        ({(1, object()): 1}, "cannot encode a dict key in obj[(1, <"),
        ("\ud800", "cannot encode obj: str holds a lone surrogate"),
        ({"a": {"b": {1, object()}}}, "cannot encode obj['a']['b'][*]: unsupported type 'object'"),
    ],
)
def test_unsupported_values_name_their_path(value, message):
    with pytest.raises(TypeError) as info:
        packb(value)
    assert str(info.value).startswith(message)


def test_encode_task_paths_start_at_args_and_kwargs():
    with pytest.raises(TypeError, match=r"^cannot encode args\[1\]\['when'\]\[0\]: unsupported type 'object'$"):
        encode_task("t", [1, {"when": [object()]}], {})
    with pytest.raises(TypeError, match=r"^cannot encode kwargs\['k'\]: unsupported type 'object'$"):
        encode_task("t", [], {"k": object()})
    with pytest.raises(TypeError, match="args must be a list or tuple"):
        encode_task("t", "abc", {})
    with pytest.raises(TypeError, match="kwargs must be a dict"):
        encode_task("t", [], [("k", 1)])


def nested(depth):
    value = None
    for _ in range(depth):
        value = [value]
    return value


def test_depth_limit_is_128_both_ways():
    assert unpackb(packb(nested(128))) == nested(128)
    with pytest.raises(TypeError, match="nesting deeper than 128"):
        packb(nested(129))
    with pytest.raises(PayloadError, match="nesting deeper than 128"):
        unpackb(b"\x91" * 129 + b"\xc0")
    decode_task(encode_task("t", nested(127), {}))  # args itself is the 128th container


def test_recursive_containers_are_errors_not_crashes():
    loop = []
    loop.append(loop)
    with pytest.raises(TypeError, match=r"^cannot encode obj\[0\]: nesting deeper than 128"):
        packb(loop)
    d = {}
    d["self"] = d
    with pytest.raises(TypeError, match="nesting deeper than 128"):
        encode_task("t", [], d)


def test_user_code_that_mutates_the_arguments_is_an_error_not_a_crash():
    target = {}

    class Growing(tzinfo):
        def utcoffset(self, dt):
            target["more"] = 1
            return timedelta(0)

    target["when"] = datetime(2024, 1, 1, tzinfo=Growing())
    target["other"] = 1
    with pytest.raises(TypeError, match="dict changed size while being encoded"):
        packb(target)

    class Failing(tzinfo):
        def utcoffset(self, dt):
            raise KeyError("boom")

    with pytest.raises(TypeError, match=r"^cannot encode obj\[0\]: KeyError: 'boom'$"):
        packb([datetime(2024, 1, 1, tzinfo=Failing())])


def test_aware_datetime_out_of_range_in_utc():
    with pytest.raises(TypeError, match="out of range once converted to UTC"):
        packb(datetime(1, 1, 1, tzinfo=PLUS_5_30))


# ---- tasks ------------------------------------------------------------------------------------------------


def test_task_round_trip_and_key_order():
    args = [123, "some string", {"a": 1.5, "b": [1, 2, 3]}, datetime(2024, 1, 2, 3, 4, 5, 678901)]
    kwargs = {"user_id": 42, "flag": True, "when": date(2024, 1, 2)}
    data = encode_task("mytask", args, kwargs, 3)
    assert decode_task(data) == ("mytask", args, kwargs, 3)
    assert list(msgpack.unpackb(data, timestamp=3)) == ["name", "args", "kwargs", "retry"]
    assert decode_task(encode_task("t", (1, 2), {})) == ("t", [1, 2], {}, 0)


def test_task_defaults_and_unknown_keys():
    data = msgpack.packb({"name": "t", "queue": "high", "extra": [1, {"x": 2}]})
    assert decode_task(data) == ("t", [], {}, 0)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "payload must be a map, got array"),
        ("str", "payload must be a map, got str"),
        ({"args": []}, "payload has no 'name'"),
        ({"name": 1}, "'name' must be a str, got int"),
        ({"name": "t", "args": {}}, "'args' must be an array, got map"),
        ({"name": "t", "args": "x"}, "'args' must be an array, got str"),
        ({"name": "t", "kwargs": []}, "'kwargs' must be a map, got array"),
        ({"name": "t", "retry": "1"}, "'retry' must be an int, got str"),
        ({"name": "t", "retry": 1.0}, "'retry' must be an int, got float"),
        ({"name": "t", "retry": 2**64 - 1}, "'retry' must be an int, got int beyond 64 bits"),
        ({1: "t"}, "payload key is not a str at offset 1"),
    ],
)
def test_task_shape_errors(payload, message):
    with pytest.raises(PayloadError, match="^" + message.replace("[", r"\[") + "$"):
        decode_task(msgpack.packb(payload))


def test_payload_error_is_a_value_error():
    assert issubclass(PayloadError, ValueError)


# ---- WakaQ JSON payloads ----------------------------------------------------------------------------------


def upstream_json(value):
    """What upstream WakaQ's serializer writes for these types (wakaq/serializer.py)."""
    if isinstance(value, datetime):
        fields = ("year", "month", "day", "hour", "minute", "second", "microsecond", "fold")
        return {"__class__": "datetime", **{f: getattr(value, f) for f in fields}}
    if isinstance(value, date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, timedelta):
        kwargs = {"days": value.days, "seconds": value.seconds, "microseconds": value.microseconds}
        return {"__class__": "timedelta", "kwargs": kwargs}
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "value": str(value)}
    if isinstance(value, bytes):
        return {"__class__": "bytes", "value": base64.b64encode(value).decode("ascii")}
    raise TypeError(value)


def test_upstream_json_payload():
    args = [1, datetime(2024, 1, 2, 3, 4, 5, 678901), date(2024, 1, 2), timedelta(days=-1, microseconds=5)]
    kwargs = {"price": Decimal("-0.000123"), "blob": b"\x00\xffhi", "nested": {"l": [None, True, 1.5]}}
    payload = {"name": "mytask", "args": args, "kwargs": kwargs, "queue": "default"}
    data = json.dumps(payload, default=upstream_json).encode()
    assert decode_task(data) == ("mytask", args, kwargs, 0)
    assert decode_task(b"  \n" + data)[0] == "mytask"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"__class__": "datetime", "value": "2024-01-02T03:04:05.678901"}, datetime(2024, 1, 2, 3, 4, 5, 678901)),
        ({"__class__": "datetime", "value": "2024-01-02T08:34:05+05:30"}, datetime(2024, 1, 2, 3, 4, 5)),
        ({"__class__": "date", "value": "2024-01-02"}, date(2024, 1, 2)),
        ({"__class__": "timedelta", "value": 90.5}, timedelta(seconds=90, microseconds=500000)),
        ({"__class__": "Decimal", "value": "1.5E+10"}, Decimal("1.5E+10")),
        ({"__class__": "bytes", "value": "aGk="}, b"hi"),
        ({"__class__": "Unknown", "x": 1}, {"__class__": "Unknown", "x": 1}),
        ({"__class__": 5}, {"__class__": 5}),
    ],
)
def test_json_class_objects(obj, expected):
    data = json.dumps({"name": "t", "args": [obj], "kwargs": {}, "retry": 2}).encode()
    assert decode_task(data) == ("t", [expected], {}, 2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "invalid JSON payload"),
        (b"{garbage}", "invalid JSON payload"),
        (b'{"name": "t"} trailing', "invalid JSON payload"),
        (b"{\xff\xfe}", "invalid JSON payload: not UTF-8 at offset 1"),
        ('{"name": "t"}'.encode("utf-16-le"), "invalid JSON payload: Expecting property name"),
        (b'{"args": []}', "payload has no 'name'"),
        (b'{"name": 1}', "'name' must be a str, got int"),
        (b'{"name": "t\\ud800"}', "'name' holds a lone surrogate"),
        (b'{"name": "t", "args": {}}', "'args' must be an array, got map"),
        (b'{"name": "t", "kwargs": []}', "'kwargs' must be a map, got array"),
        (b'{"name": "t", "retry": true}', "'retry' must be an int, got bool"),
        (b'{"name": "t", "args": [{"__class__": "datetime", "value": "nope"}]}', "invalid 'datetime' object"),
        (b'{"name": "t", "args": [{"__class__": "Decimal"}]}', "invalid 'Decimal' object"),
        (b'{"name": "t", "args": [{"__class__": "timedelta", "kwargs": {"bad": 1}}]}', "invalid 'timedelta'"),
        (b'{"name": "t", "args": [{"__class__": "bytes", "value": "!!"}]}', "invalid 'bytes' object"),
        (b'{"name": "t", "args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nesting deeper than 128"),
        (b'{"name": "t", "args": ' + b"[" * 129 + b"]" * 129 + b"}", "nesting deeper than 128"),
        (b'{"name": "t", "kwargs": {"k": ' + b'{"a": ' * 128 + b"1" + b"}" * 128 + b"}}", "nesting deeper than 128"),
    ],
)
def test_bad_json_payloads(data, message):
    with pytest.raises(PayloadError, match=message.replace("[", r"\[")):
        decode_task(data)


def test_json_nesting_limit_matches_msgpack():
    deepest = [[]]
    for _ in range(126):
        deepest = [deepest]
    data = b'{"name": "t", "args": ' + json.dumps(deepest).encode() + b', "kwargs": {"s": "[[[{{{\\"["}}'
    name, args, kwargs, _ = decode_task(data)
    assert args == deepest
    assert decode_task(encode_task(name, args, kwargs))[1] == deepest


# ---- hostile bytes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated payload: expected 1 bytes at offset 0"),
        (b"\xc1", "invalid msgpack marker 0xc1 at offset 0"),
        (b"\x92\x01\xc1", "invalid msgpack marker 0xc1 at offset 2"),
        (b"\xcb\x00\x00", "truncated payload: expected 8 bytes at offset 1"),
        (b"\xdd\xff\xff\xff\xff\x00", "truncated payload: expected 1 bytes at offset 6"),
        (b"\xdf\xff\xff\xff\xff", "truncated payload: expected 1 bytes at offset 5"),
        (b"\xdb\xff\xff\xff\xffab", "truncated payload: expected 4294967295 bytes at offset 5"),
        (b"\xc6\xff\xff\xff\xff", "truncated payload: expected 4294967295 bytes at offset 5"),
        (b"\xc9\xff\xff\xff\xff\x03", "truncated payload: expected 4294967295 bytes at offset 6"),
        (b"\x91" * 100_000, "nesting deeper than 128"),
        (b"\x81" * 100_000, "nesting deeper than 128"),
        (b"\xa2\xff\xfe", "invalid UTF-8 in string at offset 0"),
        (b"\xd4\x09\x00", "unknown ext type 9 at offset 0"),
        (b"\xd5\xff\x00\x00", "timestamp ext of 2 bytes"),
        (b"\xd7\xff\xff\xff\xff\xff\x00\x00\x00\x00", "nanoseconds"),
        (b"\xc7\x0c\xff\x00\x00\x00\x00\x7f\xff\xff\xff\xff\xff\xff\xff", "outside the datetime range"),
        (b"\xd6\x01\x07\xe8\x02\x1e", "invalid date"),
        (b"\xd4\x01\x00", "date ext of 1 bytes"),
        (b"\xc7\x0c\x02\x7f\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00", "invalid timedelta"),
        (b"\xc7\x03\x03abc", "invalid Decimal"),
        (b"\xc7\x02\x04\x31\x5f", "big int ext is not a decimal integer"),
        (b"\xc7\x00\x04", "big int ext is not a decimal integer"),
        (b"\x81\x91\x01\x02", "unusable map key"),
        (b"\x01\x02", "trailing bytes after the payload at offset 1"),
    ],
)
def test_bad_bytes_raise_payload_error(data, message):
    with pytest.raises(PayloadError, match=message.replace("[", r"\[")):
        unpackb(data)


def rich_payload():
    return encode_task(
        "rich",
        [None, True, -5, 2**40, 2**64 - 1, 2**70, 1.5, "s" * 40, b"b" * 300, list(range(20))],
        {
            "d": {str(i): i for i in range(17)},
            "when": datetime(2024, 1, 2, 3, 4, 5, 678901),
            "old": datetime(1960, 1, 1),
            "day": date(2024, 1, 2),
            "delta": timedelta(days=1),
            "price": Decimal("1.25"),
        },
        7,
    )


def test_every_truncation_is_a_payload_error():
    data = rich_payload()
    assert decode_task(data)[0] == "rich"
    for cut in range(len(data)):
        with pytest.raises(PayloadError):
            decode_task(data[:cut])
        with pytest.raises(PayloadError):
            unpackb(data[:cut])


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_never_crash(seed):
    rng = random.Random(seed)
    base = rich_payload()
    for _ in range(1500):
        if rng.random() < 0.5:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        else:  # flip a few bytes of a valid payload: deeper into the decoder than pure noise gets
            data = bytearray(base)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        for decode in (unpackb, decode_task):
            try:
                decode(data)
            except PayloadError:
                pass
