"""Headless Chromium from Debian's `chromium` package, driven by Selenium through its matching
`chromedriver` (package `chromium-driver`): nothing is downloaded at test time.

Without them the browser tests skip and say why, unless FLEXEARN_REQUIRE_BROWSER=1 (CI), where
they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

CHROMIUM = os.environ.get("FLEXEARN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FLEXEARN_CHROMEDRIVER", "/usr/bin/chromedriver")
REQUIRE_BROWSER = os.environ.get("FLEXEARN_REQUIRE_BROWSER") == "1"
ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,2400",
)


def _unavailable() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"no {path}: apt-get install chromium chromium-driver (Debian), or set FLEXEARN_CHROMIUM"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[test]'"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium WebDriver; skips (or fails under FLEXEARN_REQUIRE_BROWSER=1) without one."""
    reason = _unavailable()
    if reason:
        if REQUIRE_BROWSER:
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ARGS:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


# --- reading what a chart drew ----------------------------------------------------------------

READ_CHARTS = """
const out = {};
for (const svg of document.querySelectorAll("svg[data-chart]")) {
  const paths = {};
  for (const p of svg.querySelectorAll("path[data-series]")) paths[p.dataset.series] = p.getAttribute("d");
  out[svg.dataset.chart] = { data: { ...svg.dataset }, paths };
}
return out;
"""


@dataclass(frozen=True)
class Chart:
    """A drawn chart: its scales and, per series, its vertices mapped back to data values."""

    x_domain: tuple[float, float]
    x_range: tuple[float, float]
    y_domain: tuple[float, float]
    y_range: tuple[float, float]
    series: dict[str, list[tuple[float, float]]]
    data: dict[str, str]

    @classmethod
    def read(cls, drawn: dict[str, Any]) -> Chart:
        data = drawn["data"]

        def pair(name: str) -> tuple[float, float]:
            low, high = data[name].split(",")
            return float(low), float(high)

        chart = cls(pair("xDomain"), pair("xRange"), pair("yDomain"), pair("yRange"), {}, data)
        for name, d in drawn["paths"].items():
            numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", d)]
            pixels = list(zip(numbers[::2], numbers[1::2], strict=True))
            chart.series[name] = [chart.value(px, py) for px, py in pixels]
        return chart

    def value(self, px: float, py: float) -> tuple[float, float]:
        (x0, x1), (r0, r1) = self.x_domain, self.x_range
        (y0, y1), (s0, s1) = self.y_domain, self.y_range
        return x0 + (px - r0) / (r1 - r0) * (x1 - x0), y0 + (py - s0) / (s1 - s0) * (y1 - y0)

    @property
    def x_per_pixel(self) -> float:
        return abs((self.x_domain[1] - self.x_domain[0]) / (self.x_range[1] - self.x_range[0]))

    @property
    def y_per_pixel(self) -> float:
        return abs((self.y_domain[1] - self.y_domain[0]) / (self.y_range[1] - self.y_range[0]))


def read_charts(driver: Any) -> dict[str, Chart]:
    """Every chart on the page, read in one script run (so no redraw falls in between)."""
    return {name: Chart.read(drawn) for name, drawn in driver.execute_script(READ_CHARTS).items()}
