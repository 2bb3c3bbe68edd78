"""Public exceptions. Rust raises these too (looked up by name), so keep the names stable."""


class WakaQError(Exception):
    """Base of every wakaq error; also raised for invalid configuration."""


class SoftTimeout(WakaQError):
    """Raised inside a running sync task when it passes its soft timeout."""


class PayloadError(WakaQError, ValueError):
    """Bytes that are not a valid task payload (garbage, truncated, wrong shape, too deep)."""


class BrokerError(WakaQError, ConnectionError):
    """Redis is unreachable, timed out, or refused a command."""


class AppImportError(WakaQError):
    """`--app` does not name an importable WakaQ instance (command line tools)."""
