"""Running the real `wakaq-web` subprocess in tests, and a headless Chromium driven by Selenium."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import in_ci

WEB_APP = "tests.apps.web_app.wakaq"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


class WebServer:
    """`python -m wakaq web --port 0 ...`; `url` is read from its first line of output."""

    def __init__(self, tmp: Path, url: str, *args: str, app: str = WEB_APP, env: dict[str, str] | None = None) -> None:
        self.out_path = tmp / f"web-{time.monotonic_ns()}.out"
        self.out = self.out_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wakaq", "web", "--app", app, "--port", "0", *args],
            env=dict(os.environ, WAKAQ_TEST_URL=url, **(env or {})),
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )
        self.url = ""

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 15.0) -> WebServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"dashboard at (http://\S+/)", self.output())
            if found:
                port = found.group(1).rsplit(":", 1)[1].rstrip("/")
                self.url = f"http://127.0.0.1:{port}/"
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"wakaq-web exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"wakaq-web did not start within {timeout}s:\n{self.output()}")

    def wait_exit(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"wakaq-web did not exit:\n{self.output()}") from e

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.out.close()


def request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, bytes]:
    """One HTTP request; (status, headers (case-insensitive), body), also for 4xx/5xx answers."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def browser_available() -> bool:
    return all(os.access(p, os.X_OK) for p in (CHROMIUM, CHROMEDRIVER)) and _selenium() is not None


def _selenium() -> Any:
    try:
        import selenium
    except ImportError:
        return None
    return selenium


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium through /usr/bin/chromedriver (Selenium Manager is never asked to download)."""
    if not browser_available():
        if in_ci():
            pytest.fail("chromium, chromium-driver or selenium is missing; `make browser` and `make venv` install them")
        pytest.skip("chromium/chromium-driver (Debian) or selenium is not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_AVOID_STATS"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors, CSP violations
    profile = tempfile.mkdtemp(prefix="wakaq-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any) -> list[str]:
    """Errors the page logged since the last call (script errors, refused resources, CSP violations)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.fixture
def web(tmp_path: Path, redis_url: str) -> Iterator[WebServer]:
    """A `wakaq-web` of the web test app on the session's Redis, stopped when the test ends."""
    server = WebServer(tmp_path, redis_url).wait_ready()
    try:
        yield server
    finally:
        server.stop()
