"""The operator console in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver` packages) driven by Selenium, over syncd's app with seeded data.

For each page: it loads with no browser console error and no request outside syncd's origin (read
from Chrome's performance log, i.e. its DevTools network events), and a full-page screenshot is
written under `.artifacts/console/`. The drift filter is used through its form, and the charts
are checked to carry one point per seeded value. `.ci/run` installs the browser when missing;
elsewhere the test skips, saying why, only when the browser cannot be had.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncd.sync.codelocks.quota import QuotaConfig
from tests import console_seed
from tests.served import ServeSyncd
from tests.test_console import CODELOCKS, K3_OFF, SECRET

ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts" / "console"
WIDTH = 1366


def _browser() -> tuple[str, str]:
    """Chromium's and chromedriver's paths, else skip (fail under CI, which must have them)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromium-driver", driver))
               if path is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        reason = f"no headless browser: {', '.join(missing)} missing (apt-get install chromium " \
                 "chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    assert chromium is not None and driver is not None
    return chromium, driver


@dataclasses.dataclass
class Visit:
    """What the browser saw on one page."""

    url: str
    title: str
    console: list[dict[str, Any]]
    requests: list[str]
    screenshot: Path


@dataclasses.dataclass
class Report:
    """Everything the browser session observed."""

    visits: dict[str, Visit]
    points: dict[str, int]
    filtered_url: str = ""
    filtered_rows: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    case_heading: str = ""


def log(browser: Any, kind: str) -> list[dict[str, Any]]:
    """The browser's log entries of `kind` ('browser': console; 'performance': DevTools events)
    since the last read."""
    entries: list[dict[str, Any]] = browser.get_log(kind)
    return entries


def _drive(chromium: str, driver_path: str, base: str, seeded: console_seed.Seeded) -> Report:
    """One browser session over every page (blocking: run in a thread)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    profile = tempfile.mkdtemp(prefix="syncd-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WIDTH},900", "--no-first-run", "--disable-sync",
                "--disable-background-networking", "--disable-component-update",
                "--disable-default-apps", "--hide-scrollbars", "--force-device-scale-factor=1",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    report = Report({}, {})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def visit(name: str, url: str | None = None) -> Visit:
        if url is not None:
            browser.get(url)
        WebDriverWait(browser, 10).until(
            lambda b: b.execute_script("return document.readyState") == "complete")
        console = log(browser, "browser")
        requests = []
        for entry in log(browser, "performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                requests.append(message["params"]["request"]["url"])
        metrics = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})
        height = (metrics.get("cssContentSize") or metrics["contentSize"])["height"]
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": WIDTH, "height": math.ceil(height), "deviceScaleFactor": 1, "mobile": False})
        path = ARTIFACTS / f"{name}.png"
        browser.save_screenshot(str(path))
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        found = Visit(browser.current_url, browser.title, console, requests, path)
        report.visits[name] = found
        return found

    try:
        # Start from a blank page and drop what the browser's own start page logged and loaded
        # (chrome://new-tab-page…): from here on, every request and message is syncd's pages'.
        browser.get("about:blank")
        log(browser, "performance")
        log(browser, "browser")
        visit("overview", base + "/ui/")
        for job in ("neolock-devices", "biotime-terminals"):
            report.points[job] = len(browser.find_elements(
                By.CSS_SELECTOR, f"#job-{job} svg circle.pt"))
        browser.find_element(By.LINK_TEXT, "Drift").click()  # the nav works without script
        visit("drift")  # open cases, reached by the link
        # The filter form: choose a kind and a severity, submit, read the rows.
        browser.get(base + "/ui/drift?status=all")
        Select(browser.find_element(By.ID, "filter-kind")).select_by_value("terminal_offline")
        Select(browser.find_element(By.ID, "filter-severity")).select_by_value("warning")
        browser.find_element(By.ID, "filter-apply").click()
        WebDriverWait(browser, 10).until(lambda b: "kind=terminal_offline" in b.current_url)
        report.filtered_url = browser.current_url
        report.filtered_rows = [(r.get_attribute("data-kind") or "", r.get_attribute(
            "data-severity") or "") for r in browser.find_elements(By.CSS_SELECTOR, "#cases tr.case")]
        visit("drift-filtered")
        browser.get(base + "/ui/drift?status=all&kind=phone_not_locked")
        browser.find_element(By.LINK_TEXT, str(seeded.case_ids[0])).click()
        visit("case")
        report.case_heading = browser.find_element(By.TAG_NAME, "h1").text
        visit("alerts", base + "/ui/alerts")
        visit("quota", base + "/ui/quota")
        report.points["quota"] = len(browser.find_elements(By.CSS_SELECTOR, "#burn svg circle.pt"))
        visit("fleet", base + "/ui/fleet")
        report.points["devices"] = len(browser.find_elements(
            By.CSS_SELECTOR, "#devices-per-day svg rect.pt"))
        report.points["terminals"] = len(browser.find_elements(
            By.CSS_SELECTOR, "#terminals svg rect.pt"))
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return report


async def test_every_console_page_in_a_real_browser(
        serve_syncd: ServeSyncd, session: aiohttp.ClientSession,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Headless Chromium loads each console page over seeded data: no console error, no request
    outside syncd's origin, the drift filter form selects the right rows, the charts have one
    point per seeded run/day/state, and a screenshot of each page is written."""
    chromium, driver = _browser()
    sections = {"codelocks": CODELOCKS, "jobs": K3_OFF, "alerts": {"hooks": [{
        "url": "http://127.0.0.1:9/alerts", "name": "ops-webhook",
        "secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5LWZvci1ob29rcw=="}]}}
    async with serve_syncd(SECRET, sections=sections) as served:
        now = dt.datetime.now(dt.UTC)
        seeded = await console_seed.seed(served.app_db, now)
        base = f"http://127.0.0.1:{served.admin_port}"
        report = await asyncio.to_thread(_drive, chromium, driver, base, seeded)
        codelocks = served.app_settings.codelocks
        assert codelocks is not None
        period_start, _ = QuotaConfig.from_settings(codelocks).period_bounds(now)
    with capsys.disabled():
        print("\nconsole screenshots:")
        for name, seen in report.visits.items():
            print(f"  {name:<15} {seen.screenshot}")
    assert set(report.visits) == {"overview", "drift", "drift-filtered", "case", "alerts",
                                  "quota", "fleet"}
    for name, seen in report.visits.items():
        assert seen.url.startswith(base + "/ui"), (name, seen.url)
        assert seen.title.endswith("syncd console"), (name, seen.title)
        errors = [e for e in seen.console if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], (name, errors)
        assert seen.requests, name  # the performance log was read at all
        outside = [u for u in seen.requests if not u.startswith(base + "/")]
        assert outside == [], (name, outside)
        assert any("/ui/static/console.css" in u for u in seen.requests), name
        assert seen.screenshot.stat().st_size > 10_000, name
    assert "kind=terminal_offline" in report.filtered_url and "severity=warning" in report.filtered_url
    expected = [(k, s) for k, s, _ in console_seed.CASES if (k, s) == ("terminal_offline", "warning")]
    assert report.filtered_rows == expected
    assert report.case_heading.startswith(f"Case {seeded.case_ids[0]}: phone_not_locked")
    assert report.points["neolock-devices"] == console_seed.RUNS["neolock-devices"]
    assert report.points["biotime-terminals"] == console_seed.RUNS["biotime-terminals"]
    assert report.points["quota"] == len([t for t in seeded.k3_finished if t >= period_start])
    assert report.points["devices"] == 30
    assert report.points["terminals"] == 4  # online, offline, missing, unknown
