import wakaq


def test_version() -> None:
    assert wakaq.__version__.count(".") == 2
