import pytest

from wakaq import WakaQ, WakaQError
from wakaq.expr import cpu_cores, eval_expr


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (3, 3),
        ("2", 2),
        ("cores", 8),
        ("cores*4", 32),
        (" cores * 4 ", 32),
        ("cores/3", 2),
        ("cores//3", 2),
        ("(cores + 1) // 2", 4),
        ("cores - 2", 6),
        ("-2 + cores", 6),
        ("1.5 * cores", 12),
        ("0.5", 0),
        ("((cores))", 8),
    ],
)
def test_valid(expr: str | int, expected: int) -> None:
    assert eval_expr(expr, cores=8) == expected


def test_cores_defaults_to_cpu_count() -> None:
    assert eval_expr("cores") == cpu_cores() >= 1


@pytest.mark.parametrize(
    ("expr", "token"),
    [
        ("__import__('os')", "__import__"),
        ("__import__('os').system('true')", "__import__"),
        ("cores**99", "**"),
        ("9**9**9", "**"),
        ("1e9999", "1e9999"),
        ("open('/etc/passwd')", "open"),
        ("cores.bit_length()", "."),
        ("lambda: 1", "lambda"),
        ("[1]", "["),
        ("cores if 1 else 2", "if"),
        ("Cores", "Cores"),
        ("corez", "corez"),
        ("1 2", "2"),
        ("(1", "missing ')'"),
        ("1)", ")"),
        ("", "unexpected end"),
        ("*", "*"),
        ("1/0", "division by zero"),
        ("1//(cores-cores)", "division by zero"),
        ("99999999*99999999", "out of range"),
        ("(" * 50 + "1" + ")" * 50, "nested deeper"),
        ("-" * 50 + "1", "nested deeper"),
        ("1+" * 150 + "1", "longer than"),
        ("1;2", ";"),
        ("0x10", "0x10"),
    ],
)
def test_hostile_or_invalid(expr: str, token: str) -> None:
    with pytest.raises(WakaQError) as info:
        eval_expr(expr, cores=8)
    message = str(info.value)
    assert token in message
    assert "invalid expression" in message


@pytest.mark.parametrize("value", [None, 1.5, True, [1], b"cores"])
def test_wrong_types(value: object) -> None:
    with pytest.raises(WakaQError, match="invalid expression"):
        eval_expr(value, cores=8)  # type: ignore[arg-type]


def test_app_concurrency_uses_the_expression() -> None:
    app = WakaQ(queues=["q"], concurrency="cores*2", async_concurrency="cores")
    assert app.concurrency == cpu_cores() * 2
    assert app.async_concurrency == cpu_cores()


def test_app_concurrency_zero_means_one_per_core() -> None:
    assert WakaQ(queues=["q"]).concurrency == cpu_cores()
    assert WakaQ(queues=["q"], concurrency=0).concurrency == cpu_cores()


def test_app_concurrency_hostile_expression_names_it() -> None:
    with pytest.raises(WakaQError, match=r"__import__"):
        WakaQ(queues=["q"], concurrency="__import__('os').getpid()")
