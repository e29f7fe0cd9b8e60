"""The explorer in a real headless Chromium (the system's chromium and chromedriver, driven by selenium): the page
loads, changing an input shows exactly what the Python API returns for the same inputs, two devices compare, and a
bad input shows its one-line error on the page.

Skipped only when the browser (or selenium) is missing and PERFSIM_REQUIRE_BROWSER is unset; CI (.ci/run) sets it
and installs chromium and chromium-driver, so there the test never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest

import perfsim as ps

ROOT = Path(__file__).resolve().parents[1]
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1000")
WAIT_S = 30.0


def _missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    try:
        import selenium  # noqa: F401
        import starlette  # noqa: F401
    except ModuleNotFoundError as err:
        return f"{err.name} is not installed (pip install -e '.[dev]')"
    for name in ("chromium", "chromedriver"):
        if shutil.which(name) is None:
            return f"{name} is not installed (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def server():
    """`perfsim ui` on a free port; its URL."""
    process = subprocess.Popen([sys.executable, "-m", "perfsim", "ui", "--port", "0", "--no-browser"], cwd=ROOT,
                               stderr=subprocess.PIPE, text=True)
    line = process.stderr.readline()
    assert line.startswith("perfsim ui: serving on http://127.0.0.1:"), line + process.stderr.read()
    yield line.split()[4]
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def browser():
    why = _missing()
    if why:
        if os.environ.get("PERFSIM_REQUIRE_BROWSER"):
            pytest.fail(f"PERFSIM_REQUIRE_BROWSER is set but {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
        yield driver
        driver.quit()


def state(page) -> tuple[str, int, dict[str, list[str]]]:
    """(data-state, data-rendered, data-query) read in one script call: three separate reads could straddle the
    page's update and pair the old state with the new query."""
    now, rendered, query = page.execute_script(
        "const d = document.body.dataset; return [d.state, d.rendered, d.query || ''];")
    return now, int(rendered), parse_qs(query)


def shown_after(page, before: int, **expected: str) -> str:
    """Wait until the page has drawn an answer newer than `before` for inputs including `expected`; its state."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        now, rendered, query = state(page)
        if now in ("ready", "error") and rendered > before and all(query.get(k) == [v] for k, v in expected.items()):
            return now
        time.sleep(0.05)
    raise AssertionError(f"the page did not show {expected} within {WAIT_S} s: {state(page)}")


def enter(page, name: str, value: str) -> str:
    """Type `value` over input `name` as a person would (select all, type, Tab); the page's state once shown."""
    from selenium.webdriver.common.keys import Keys

    before = state(page)[1]
    field = page.find_element("id", name)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value, Keys.TAB)
    return shown_after(page, before, **{name: value})


def value(page, selector: str) -> float:
    return float(page.find_element("css selector", selector).get_attribute("data-value"))


def test_the_explorer_shows_the_apis_numbers_as_inputs_change(server, browser):
    browser.get(server)
    assert shown_after(browser, 0, hardware="h100-sxm", batch="1") == "ready"
    assert enter(browser, "batch", "16") == "ready"
    step = ps.step("llama-3-8b", "h100-sxm", batch=16, engine="des")
    summary = step.summary
    for field in ("step_s", "tokens_per_s", "energy_j", "memory_bytes_per_device"):
        assert value(browser, f"#summary [data-device='0'][data-field={field}]") == summary[field]
    for row in step.records():
        assert value(browser, f"#breakdown [data-device='0'][data-op={row['op']}][data-field=time_s]") == row["time_s"]
    assert value(browser, "#memory [data-field=kv_bytes]") == summary["memory"]["kv_bytes"]
    # sizes read in binary units, as the CLI prints them: the H100's 80 GiB, not 85.9 GB
    assert browser.find_element("css selector", "#memory [data-field=capacity_bytes]").text == "80 GiB"
    points = browser.find_elements("css selector", "#points [data-field=time_s]")
    assert len(points) == len(ps.roofline("h100-sxm", step=step).points)
    assert browser.find_element("id", "roofline").get_attribute("naturalWidth") != "0"  # the SVG was drawn

    assert enter(browser, "compare", "mi300x") == "ready"
    other = ps.step("llama-3-8b", "mi300x", batch=16, engine="des")
    assert [h.text for h in browser.find_elements("css selector", "#summary th")][1:3] == ["h100-sxm", "mi300x"]
    assert value(browser, "#summary [data-device='0'][data-field=step_s]") == step.step_s
    assert value(browser, "#summary [data-device='1'][data-field=step_s]") == other.step_s
    devices = {p.get_attribute("data-device") for p in browser.find_elements("css selector", "#points [data-device]")}
    assert devices == {"h100-sxm", "mi300x"}
    assert len(browser.find_elements("css selector", "#timeline img")) == 2


def test_a_bad_input_shows_its_error_on_the_page(server, browser):
    browser.get(server)
    shown_after(browser, 0)  # the first answer, for the default inputs
    assert enter(browser, "hardware", "no-such-chip") == "error"
    with pytest.raises(ps.PerfsimError) as err:
        ps.hardware("no-such-chip")
    error = browser.find_element("id", "error")
    assert error.is_displayed() and error.text == str(err.value)
    assert not browser.find_element("id", "results").is_displayed()
    assert "Traceback" not in browser.page_source

    assert enter(browser, "hardware", "h100-sxm") == "ready"
    assert not error.is_displayed()
    assert enter(browser, "model", "llama-3-70b") == "error"  # 140 GB of bf16 weights on an 80 GB chip
    assert error.text.startswith("llama-3-70b does not fit on h100-sxm with 1 device(s)")


def test_an_op_on_the_page_is_the_apis_estimate(server, browser):
    browser.get(server)
    shown_after(browser, 0)
    before = state(browser)[1]
    browser.find_element("css selector", "input[name=mode][value=op]").click()
    example = browser.find_element("id", "op").get_attribute("placeholder")
    assert shown_after(browser, before, op=example) == "ready"
    assert value(browser, "#summary [data-field=step_s]") == ps.estimate(example, "h100-sxm").time_s
    assert enter(browser, "op", "gemm m=x") == "error"
    with pytest.raises(ps.PerfsimError) as err:
        ps.op("gemm m=x")
    assert browser.find_element("id", "error").text == str(err.value)
