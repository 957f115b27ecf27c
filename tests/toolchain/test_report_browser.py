"""report.html and index.html rendered in a real browser (Debian's headless Chromium, via Selenium).

One digits compile for two targets (a microcontroller and ONNX Runtime, with the per-layer int8
analysis) and one over-budget compile (a 2.1 M-parameter dense model on cortex-m0plus) feed every
test. The page must load without a console error, show the gauges and the per-layer table with
report.json's numbers, and sort; a screenshot of each page lands in the test's temporary folder
(and in ``$EDGEC_SCREENSHOTS`` when set: that is how the README's pictures are made).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DIGITS_CALIBRATION, DIGITS_EVAL, DIGITS_MODEL

pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "Debian's chromium and chromium-driver are needed (make test installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,1200"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()


@pytest.fixture(scope="module")
def digits_build(tmp_path_factory):
    import edgec

    out = tmp_path_factory.mktemp("digits")
    model = DIGITS_MODEL.relative_to(Path.cwd()) if DIGITS_MODEL.is_relative_to(Path.cwd()) else DIGITS_MODEL
    edgec.compile(model, ["cortex-m4", "onnx-cpu"], calibration=str(DIGITS_CALIBRATION),
                  eval=str(DIGITS_EVAL), out=out, layer_error=True)
    return out


@pytest.fixture(scope="module")
def over_budget_build(tmp_path_factory):
    """2,108,426 parameters: about 2.0 MiB in int8, over cortex-m0plus's 1.875 MiB for the model."""
    import edgec
    from edgec.core.errors import GateError
    from edgec.core.tf import keras

    k = keras()
    folder = tmp_path_factory.mktemp("over")
    k.utils.set_random_seed(0)
    x = k.Input((2048,), name="features")
    model = k.Model(x, k.layers.Dense(10, activation="softmax", name="probs")(
        k.layers.Dense(1024, activation="relu", name="wide")(x)))
    model.save(folder / "wide.keras")
    np.savez(folder / "calib.npz", features=np.random.default_rng(0).normal(size=(64, 2048)).astype(np.float32))
    with pytest.raises(GateError, match="over the"):
        edgec.compile(folder / "wide.keras", ["cortex-m0plus", "esp32-s3"], calibration=str(folder / "calib.npz"),
                      out=folder / "out")
    return folder / "out"


def _screenshot(browser, name: str, folder: Path) -> Path:
    """Full-page PNG (palette-reduced, so the README copies stay small)."""
    from PIL import Image

    content, chrome = browser.execute_script("return [document.body.getBoundingClientRect().bottom + 24, "
                                             "window.outerHeight - window.innerHeight]")
    browser.set_window_size(1000, int(min(content, 3000) + chrome))
    raw = folder / f"{name}.raw.png"
    assert browser.save_screenshot(str(raw))
    path = folder / f"{name}.png"
    Image.open(raw).convert("RGB").quantize(colors=128).save(path, optimize=True)
    raw.unlink()
    extra = os.environ.get("EDGEC_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)
    browser.set_window_size(1000, 1200)
    return path


def _open(browser, page: Path) -> None:
    browser.get_log("browser")  # drop what an earlier page logged
    browser.get(page.resolve().as_uri())
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, f"console errors in {page}: {severe}"


def check_report_page(browser, page: Path, report: dict) -> None:
    """The page shows the verdict, a gauge per budget and the per-layer table, with report.json's numbers."""
    _open(browser, page)
    find = browser.find_elements
    verdict = "FAILED" if report["failures"] else "PASSED"
    assert find("id", "verdict") and find("id", "verdict")[0].text == verdict
    mem, size = report["memory"], report["size"]
    expected = [(n, u, b) for n, u, b in (("Flash", size["flash_bytes"], mem.get("flash_budget_bytes")),
                                          ("RAM", mem.get("arena_bytes"), mem.get("ram_budget_bytes")))
                if u is not None and b is not None]
    gauges = find("css selector", "svg.gauge")
    assert [(g.get_attribute("data-label"), int(g.get_attribute("data-used")), int(g.get_attribute("data-budget")))
            for g in gauges] == expected
    assert all(g.size["width"] > 100 and g.size["height"] > 20 for g in gauges)
    rows = report["layers"]["rows"]
    assert rows, "report.json has no per-layer rows"
    shown = find("css selector", "#layer-table tbody tr")
    assert len(shown) == len(rows) and find("id", "layer-table")[0].is_displayed()
    for tr, row in zip(shown, rows):
        cell = {td.get_attribute("data-col"): td for td in tr.find_elements("css selector", "td")}
        assert cell["name"].text == row["name"] and cell["op"].text == row["op"]
        assert int(cell["macs"].get_attribute("data-v")) == row["macs"]
        assert int(cell["weight_bytes"].get_attribute("data-v")) == row["weight_bytes"]
        if row["int8_snr_db"] is not None:
            assert float(cell["int8_snr_db"].get_attribute("data-v")) == row["int8_snr_db"]


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def test_digits_report_shows_budgets_layers_and_int8_error(browser, digits_build, tmp_path):
    folder = digits_build / "cortex-m4"
    report = _report(folder)
    rows = report["layers"]["rows"]
    assert any(r["int8_snr_db"] is not None for r in rows)  # --layer-error ran
    assert sum(r["macs"] for r in rows) == report["model"]["macs"]  # same count, int8 file vs float file
    stored = report["compression"]["bytes"]
    layer_bytes = sum(r["weight_bytes"] for r in rows if r["op"] != "RESHAPE")  # RESHAPE: its shape constant
    assert layer_bytes == stored["weights_bytes"] + stored["biases_bytes"]
    check_report_page(browser, folder / "report.html", report)
    assert browser.find_elements("css selector", "svg.confusion")  # a classifier: artifact vs float
    assert _screenshot(browser, "report-digits-cortex-m4", tmp_path).stat().st_size > 10_000


def test_layer_table_sorts_by_a_clicked_column(browser, digits_build):
    report = _report(digits_build / "cortex-m4")
    _open(browser, digits_build / "cortex-m4" / "report.html")
    browser.find_element("css selector", '#layer-table th[data-col="macs"]').click()
    first = browser.find_element("css selector", '#layer-table tbody tr td[data-col="name"]').text
    assert first == max(report["layers"]["rows"], key=lambda r: r["macs"])["name"]


def test_onnx_report_has_its_layer_table_and_says_it_has_no_budget(browser, digits_build):
    folder = digits_build / "onnx-cpu"
    report = _report(folder)
    assert report["layers"]["source"] == "the shipped .onnx"
    rows = report["layers"]["rows"]
    assert sum(r["macs"] for r in rows) == report["model"]["macs"]
    shares = [r["time_share"] for r in rows]  # ONNX Runtime's profiler on the shipped file
    assert all(s is not None for s in shares) and 0.5 < sum(shares) <= 1.0 + 1e-3
    check_report_page(browser, folder / "report.html", report)
    assert browser.find_elements("css selector", '#layer-table th[data-col="time_share"]')
    assert "not measured" in browser.find_element("id", "budgets").text


def test_over_budget_report_says_by_how_much_and_what_to_do(browser, over_budget_build, tmp_path):
    folder = over_budget_build / "cortex-m0plus"
    report = _report(folder)
    check_report_page(browser, folder / "report.html", report)
    assert browser.find_elements("css selector", "svg.gauge rect.over")
    assert "--prune" in browser.find_element("id", "next-step").text
    _screenshot(browser, "report-over-budget", tmp_path)


def test_index_links_every_target_report(browser, over_budget_build, tmp_path):
    _open(browser, over_budget_build / "index.html")
    rows = browser.find_elements("css selector", "#targets tbody tr")
    assert [r.find_element("tag name", "a").text for r in rows] == ["cortex-m0plus", "esp32-s3"]
    assert [r.find_elements("css selector", "td")[-1].text for r in rows] == ["FAILED", "PASSED"]
    _screenshot(browser, "index-multi-target", tmp_path)
    rows[1].find_element("tag name", "a").click()
    assert browser.find_element("tag name", "h1").text.startswith("esp32-s3")


@pytest.mark.parametrize("breakage", ["no layer table", "script error"])
def test_the_browser_check_fails_on_a_broken_report(browser, digits_build, tmp_path, breakage):
    folder = digits_build / "cortex-m4"
    page = (folder / "report.html").read_text()
    if breakage == "no layer table":
        start = page.index('<table id="layer-table"')
        page = page[:start] + page[page.index("</table>", start) + len("</table>"):]
    else:
        page = page.replace("</body>", "<script>notDefinedAnywhere();</script></body>")
    broken = tmp_path / "report.html"
    broken.write_text(page)
    with pytest.raises(AssertionError):
        check_report_page(browser, broken, _report(folder))


def test_bench_puts_the_measured_latency_in_the_index(run_cli, digits_build):
    code, _, err = run_cli("bench", digits_build / "onnx-cpu", "--runs", "20")
    assert code == 0, err
    bench = json.loads((digits_build / "onnx-cpu" / "bench.json").read_text())
    page = (digits_build / "index.html").read_text()
    assert f"{bench['artifact']['p50_ms']:.3f} ms ({bench['runtime']})" in page
    assert page.count("— (run edgec bench)") == 1  # cortex-m4 not benched
