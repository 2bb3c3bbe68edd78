"""`make screenshot`: pictures of the dashboard while the demo runs, taken by headless Debian Chromium.

The overview shows the queues (with their latency: the slow queue grows under the steady load), the rate and
pending charts, and the per-minute history since an hour ago (the hover values of its latest minute shown).

Called by demo/run.py with `--screenshot PATH`: PATH gets the overview, PATH with `-failed` before the suffix the
failed-tasks page (tracebacks open). Needs `make browser` (chromium, chromium-driver) and selenium (in .venv).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from tests.webserver import CHROMEDRIVER, CHROMIUM, CHROMIUM_ARGS

SETTLE = 2.5  # seconds for the page's polls to fill the table and the charts
LOAD_SECONDS = 25.0


def steady_load(seconds: float = LOAD_SECONDS) -> None:
    """A few seconds of mixed traffic so the charts show a trend: 500 fast tasks/s, slow tasks arriving faster than
    the two children run them (the slow queue grows), a failing task every 2 s."""
    from demo import app

    print(f"steady load for {seconds:.0f} s before the screenshots ...")
    deadline = time.monotonic() + seconds
    tick = 0
    while time.monotonic() < deadline:
        app.fast.delay_many([((i,), {}) for i in range(50)])
        for _ in range(1 + tick % 2):  # 15/s; two children run at most 10 of these 0.2 s tasks a second
            app.slow.delay(tick)
        if tick % 20 == 0:
            app.broken.delay()
        tick += 1
        time.sleep(0.1)


def capture(url: str, path: Path) -> list[Path]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_AVOID_STATS"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (*CHROMIUM_ARGS, "--window-size=1300,1000", "--hide-scrollbars"):
        options.add_argument(arg)
    profile = tempfile.mkdtemp(prefix="wakaq-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    failed = path.with_name(f"{path.stem}-failed{path.suffix}")
    try:
        driver.get(url + "#overview")
        time.sleep(SETTLE)
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.support.ui import Select

        Select(driver.find_element("id", "since")).select_by_value("3600")
        time.sleep(SETTLE / 2)
        chart = driver.find_element("id", "chart-history")
        ActionChains(driver).move_to_element_with_offset(chart, chart.size["width"] // 2 - 20, 0).perform()
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
        driver.get(url + "#failed")
        time.sleep(SETTLE / 2)
        Select(driver.find_element("id", "failed-queue")).select_by_value("default")
        time.sleep(SETTLE / 2)
        for summary in driver.find_elements("css selector", "details.tb summary")[:1]:
            summary.click()
        driver.save_screenshot(str(failed))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return [path, failed]
