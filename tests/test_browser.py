"""The jobs page in a real browser: Debian's chromium, driven by selenium, against ``--demo``.

One module-scoped exporter (``batch-job-exporter --demo``, its registration API
and its metrics listener on port 0) and one headless chromium session serve
every test here.  chromium and its driver come from Debian (``make test``
installs them); the driver's path is given, so selenium never looks for one
to download.  Each test reads the browser's console: a page that logs an
error (a refused style, a failed fetch) fails.  Screenshots of the page, light
and dark, go to ``build/browser/``.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    JavascriptException,
    NoAlertPresentException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from exporter.simulator.demo import DEMO_JOBS, DEMO_MISSING_ID
from exporter.simulator.vendors import fullstory
from tests.test_e2e_prometheus import Processes, request, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "build" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
START_TIMEOUT = 20.0
POLLED_TIMEOUT = 30.0  # until every demo job has been polled once (5 s interval)
REFRESH_TIMEOUT = 30.0  # a finish reaches the page: the next poll, then the next refresh
HOSTILE = "<script>alert(1)</script>"
HOSTILE_LABEL = '"><img src=x onerror="window.pwned=1">'
WIDTH = 1400


@dataclass(frozen=True)
class Demo:
    """The running demo exporter: its page, its registration API and its simulator."""

    root: str
    api: str
    sim: str
    procs: Processes


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``batch-job-exporter --demo`` on port 0, every demo job polled once; stopped after."""
    procs = Processes(tmp_path_factory.mktemp("browser"))
    exe = Path(sys.executable).with_name("batch-job-exporter")
    try:
        procs.start(
            "exporter",
            [
                str(exe),
                "--demo",
                "--api.listen-address=127.0.0.1:0",
                "--web.listen-address=127.0.0.1:0",
            ],
        )
        found: dict[str, str] = {}

        def listening() -> bool:
            text = procs.log("exporter").read_text()
            for name, pattern in (
                ("web", r"serving /metrics on port (\d+)"),
                ("api", r"registration API on port (\d+)"),
                ("sim", r"demo: simulated vendor APIs on (http://127\.0\.0\.1:\d+/)"),
            ):
                if match := re.search(pattern, text):
                    found[name] = match[1]
            return len(found) == 3

        wait_for("the demo exporter to listen", listening, START_TIMEOUT, procs)
        demo = Demo(
            f"http://127.0.0.1:{found['web']}/",
            f"http://127.0.0.1:{found['api']}/api/v1/",
            found["sim"],
            procs,
        )
        wait_for("every demo job to be polled", lambda: all_polled(demo), POLLED_TIMEOUT, procs)
        yield demo
    finally:
        procs.stop()


def listed(demo: Demo) -> list[dict[str, object]]:
    """``GET /api/v1/jobs``."""
    status, body = request("GET", demo.api + "jobs")
    assert status == 200, body
    jobs: list[dict[str, object]] = json.loads(body)["jobs"]
    return jobs


def all_polled(demo: Demo) -> bool:
    """Whether every job has been polled at least once."""
    return all(job["poll_success"] is not None for job in listed(demo))


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless chromium session for the module, in a fresh profile removed afterwards."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            pytest.fail(f"{path} not found: run `make test`, which installs Debian's chromium")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",  # root in a container has no user namespace to sandbox in
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={WIDTH},900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(20)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: WebDriver) -> list[str]:
    """The console's errors since the last call (reading the log empties it)."""
    entries = driver.get_log("browser")  # type: ignore[no-untyped-call]  # untyped in selenium
    return [entry["message"] for entry in entries if entry["level"] == "SEVERE"]


def open_page(driver: WebDriver, url: str) -> None:
    """Load ``url`` and forget the console's earlier lines."""
    console_errors(driver)
    driver.get(url)


def rows(driver: WebDriver) -> dict[str, str]:
    """The jobs table: each job ID and the text of its status badge, read in one go."""
    pairs = driver.execute_script(
        "return [...document.querySelectorAll('main section:nth-of-type(2) tbody tr')]"
        ".filter(tr => tr.querySelector('th .id'))"
        ".map(tr => [tr.querySelector('th .id').innerText, tr.querySelector('.badge').innerText])"
    )
    return dict(pairs)


def wait_for_rows(driver: WebDriver, expected: dict[str, str]) -> None:
    """Wait for the page's own refreshes to show ``expected`` (a reload may be under way)."""
    WebDriverWait(
        driver,
        REFRESH_TIMEOUT,
        poll_frequency=0.5,
        ignored_exceptions=(JavascriptException, StaleElementReferenceException),
    ).until(lambda d: rows(d) == expected)


def screenshot(driver: WebDriver, name: str) -> Path:
    """The whole page, as tall as it is, to ``build/browser/NAME.png``."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(WIDTH, height + 100)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path))
    driver.set_window_size(WIDTH, 900)
    return path


def test_the_page_lists_the_demo_jobs_with_no_console_errors(
    demo: Demo, browser: WebDriver
) -> None:
    """Every demo job with its status, the sources, labelled controls; light and dark shots."""
    open_page(browser, demo.root)
    assert browser.title == "Jobs · batch-job-exporter"
    shown = rows(browser)
    expected = {job_id for ids in DEMO_JOBS.values() for job_id in ids} | {DEMO_MISSING_ID}
    assert set(shown) == expected
    by_api = {job["id"]: job["status"] for job in listed(demo) if job["id"] in shown}
    for job_id, status in by_api.items():
        if status is not None:
            assert shown[job_id] == str(status).replace("_", " "), job_id
    sources = browser.find_elements(By.CSS_SELECTOR, "main section:first-of-type tbody th a")
    assert sorted(a.text for a in sources) == ["evocalize", "fullstory", "talkdesk"]
    # Each form control has a label, each column header its scope.
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('select, input')]"
        ".filter(e => e.labels.length === 0).map(e => e.name)"
    )
    assert unlabelled == []
    assert browser.execute_script(
        "return [...document.querySelectorAll('thead th')].every(th => th.scope === 'col')"
    )
    light = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert light == "rgb(255, 255, 255)"
    screenshot(browser, "jobs-page")
    scheme = {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", scheme)
    try:
        dark = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert dark == "rgb(13, 17, 23)"
        screenshot(browser, "jobs-page-dark")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert console_errors(browser) == []


def test_filters_and_search_narrow_the_table(demo: Demo, browser: WebDriver) -> None:
    """The form's source, then status, then a case-insensitive search of the ID."""
    open_page(browser, demo.root)
    Select(browser.find_element(By.ID, "f-source")).select_by_value("fullstory")
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    WebDriverWait(browser, 10).until(lambda d: "source=fullstory" in d.current_url)
    assert set(rows(browser)) == set(DEMO_JOBS[fullstory.API])
    search = browser.find_element(By.ID, "f-q")
    search.clear()
    search.send_keys("EVENTS")
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    WebDriverWait(browser, 10).until(lambda d: "q=EVENTS" in d.current_url)
    assert set(rows(browser)) == {"fs-web-events", "fs-mobile-events"}
    # Three 404s in a row make a job not found: the page shows it once they have come.
    open_page(browser, demo.root + "?status=not_found")
    wait_for_rows(browser, {DEMO_MISSING_ID: "not found"})
    assert console_errors(browser) == []


def test_a_hostile_job_id_renders_as_text_and_runs_nothing(demo: Demo, browser: WebDriver) -> None:
    """A job registered as <script>alert(1)</script> shows as that text; no alert, no handler."""
    body = json.dumps({"labels": {"note": HOSTILE_LABEL}}).encode()
    url = demo.api + f"sources/fullstory/jobs/{quote(HOSTILE, safe='')}"
    status, answer = request("PUT", url, body, {"Content-Type": "application/json"})
    assert status == 201, answer
    open_page(browser, demo.root + "?q=" + quote("<script>"))
    (cell,) = browser.find_elements(By.CSS_SELECTOR, "tbody th .id")
    assert cell.text == HOSTILE
    label = browser.find_element(By.CSS_SELECTOR, "tbody th .label")
    assert label.text == f"note={HOSTILE_LABEL}"
    assert browser.find_element(By.ID, "f-q").get_attribute("value") == "<script>"
    assert browser.execute_script("return document.querySelectorAll('script, img').length") == 0
    assert browser.execute_script("return window.pwned") is None
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.accept()
    assert console_errors(browser) == []


def test_the_page_refreshes_itself_and_shows_a_status_change(
    demo: Demo, browser: WebDriver
) -> None:
    """A job the simulator fails turns failed on the page by itself, filters kept."""
    open_page(browser, demo.root + "?q=ABD123")
    assert rows(browser) == {"abd123=": "running"}
    loaded = browser.execute_script("return performance.timeOrigin")
    finish = f"{demo.sim}_sim/jobs/{fullstory.API}/{quote('abd123=', safe='')}/finish"
    status, answer = request("POST", finish, b'{"outcome": "failed"}')
    assert status == 200, answer
    started = time.monotonic()
    wait_for_rows(browser, {"abd123=": "failed"})
    assert browser.execute_script("return performance.timeOrigin") > loaded  # reloaded itself
    assert "q=ABD123" in browser.current_url
    assert time.monotonic() - started < REFRESH_TIMEOUT
    assert console_errors(browser) == []
