"""The report stage (real TF, real TFLM, real matplotlib), its page in real headless Chromium, and
`doit experiments` over the cache after three recipes."""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import xxhash
from PIL import Image

from conftest import doit, ran, write_manifest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
CHART_BLUE = np.array([0x1f, 0x77, 0xb4])  # matplotlib's first colour: bars and curves of the charts


def chromium(page, screenshot, profile) -> list[str]:
    """Render `page` to `screenshot` in Debian's headless Chromium; return the console messages it logged."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: `apt-get update && apt-get install -y chromium` "
                    "(CI does this in .ci/run); the report page must be checked in a real browser")
    result = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1200,4400",
                             f"--screenshot={screenshot}", page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert screenshot.is_file(), result.stderr[-2000:]
    return [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


def test_report_shows_the_build_and_says_what_is_absent(built_project):
    folder = built_project / "build" / "report"
    page, summary = (folder / "report.html").read_text(), (folder / "report.md").read_text()
    calibration = json.loads((built_project / "build/calibrate/calibration.json").read_text())
    # self-contained: every image is an embedded PNG that decodes, nothing is fetched
    images = re.findall(r'<img alt="([^"]+)" src="([^"]+)"', page)
    assert [alt for alt, _ in images] == ["class counts and sample images", "training curves",
                                          "accuracy, model bytes and arena", "confusion matrix",
                                          "memory and MACs per layer", "flash, SRAM and PSRAM budget"]
    for _, source in images:
        assert source.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).verify()
    assert not re.search(r'(src|href)="(?!data:)', page)
    for text in (summary, page):
        assert f"{calibration['model_bytes']}" in text and f"{calibration['arena_bytes']}" in text
        assert "Estimate, not a measurement" in text and "cpu_mhz of boards/esp32cam.yaml" in text
        assert "No build ran" in text and "Pruning is off" in text
    # the per-layer table: MACs of conv1 = 32*32*8 outputs * 3*3*1 taps, and the int8 error per layer
    assert "| conv1 | Conv2D | 32x32x8 | 80 | 80 | 73728 | 0 |" in summary
    assert "No per-layer quantization error" not in summary
    budget = json.loads((built_project / "build/codegen/budget.json").read_text())
    assert f"| flash (app partition) | {budget['flash']['needed_bytes']} | {budget['flash']['available_bytes']} |" \
        in summary


@pytest.mark.chromium
def test_report_page_in_headless_chromium(built_project, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>throw new Error('kaput')</script></body></html>")
    assert any("kaput" in line for line in chromium(broken, tmp_path / "broken.png", tmp_path / "p1"))

    shot = tmp_path / "report.png"
    console = chromium(built_project / "build/report/report.html", shot, tmp_path / "p2")
    assert console == []
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (4400, 1200)
    blue = np.all(np.abs(pixels - CHART_BLUE) < 12, axis=2)
    assert blue.sum() > 20000  # the bars and curves of the charts were drawn, not broken-image icons
    rows_with_charts = np.flatnonzero(blue.any(axis=1))
    assert rows_with_charts.max() - rows_with_charts.min() > 1500  # charts all the way down the page


def test_report_reruns_only_for_what_it_shows(project_copy):
    assert "report" not in ran(doit(project_copy))
    write_manifest(project_copy, {"firmware": {"led_class": "7"}})  # shown in the manifest section
    assert "report" in ran(doit(project_copy, "report"))
    assert "led_class: '7'" in (project_copy / "build/report/report.md").read_text()
    changed = (project_copy / "build/report/report.html").read_bytes()
    write_manifest(project_copy)
    result = doit(project_copy, "report")  # the earlier page comes back from the cache
    assert "restored from cache" in result.stdout and "train" not in ran(result)
    assert (project_copy / "build/report/report.html").read_bytes() != changed
    assert "report" not in ran(doit(project_copy, "report"))


def test_report_follows_an_optional_firmware_build(project_copy):
    """build (PlatformIO, needs the network) is outside the default run: its build.json, when present, is
    shown and reruns the report, but reading it never makes `doit` run the build. PlatformIO cannot download
    the ESP32 platform here, so the file a real `pio run` records stands in for one."""
    build_json = project_copy / "build/build/build.json"
    build_json.parent.mkdir(parents=True)
    index = (project_copy / "build/codegen/project.json").read_bytes()
    build_json.write_text(json.dumps({"env": "esp32cam", "flash_used_bytes": 1187345,
                                      "flash_available_bytes": 3145728, "ram_used_bytes": 61200,
                                      "ram_available_bytes": 327680, "project": xxhash.xxh3_128_hexdigest(index)}))
    result = doit(project_copy)
    assert "report" in ran(result) and "build" not in ran(result)
    assert "| flash_used_bytes | 1187345 |" in (project_copy / "build/report/report.md").read_text()
    assert "report" not in ran(doit(project_copy))
    (project_copy / "build/codegen/project.json").write_bytes(index + b" ")  # codegen made another project since
    assert "report" in ran(doit(project_copy))
    assert "another firmware project than codegen's current one" in (
        project_copy / "build/report/report.md").read_text()
    (project_copy / "build/codegen/project.json").write_bytes(index)
    build_json.unlink()
    assert "report" in ran(doit(project_copy))
    assert "No build ran" in (project_copy / "build/report/report.md").read_text()


def test_experiments_after_three_recipes(project_copy):
    recipes = [{}, {"compression": {"calibrate": {"samples": 40}}},
               {"compression": {"quantize": {"scheme": "int8_per_tensor"}}}]
    for recipe in recipes[1:]:
        write_manifest(project_copy, recipe)
        assert "train" not in ran(doit(project_copy))
    artifacts = {p: p.read_bytes() for p in (project_copy / "build").rglob("*") if p.is_file()}
    result = doit(project_copy, "experiments")
    print(result.stdout)
    assert ran(result) == {"experiments"}  # nothing retrained or reconverted
    assert {p: p.read_bytes() for p in artifacts} == artifacts
    assert "3 configurations" in result.stdout
    assert "keys that differ: compression.calibrate.samples, compression.quantize.scheme" in result.stdout
    rows = json.loads((project_copy / "build/experiments/experiments.json").read_text())
    recipe = {(r["config"]["compression.calibrate.samples"], r["config"]["compression.quantize.scheme"]):
              r["metrics"] for r in rows}
    assert set(recipe) == {(100, "int8"), (40, "int8"), (100, "int8_per_tensor")}
    # one scale per tensor instead of per channel: fewer bytes
    assert recipe[100, "int8_per_tensor"]["model_bytes"] < recipe[100, "int8"]["model_bytes"]
    def point(row):
        return np.array([-row["metrics"]["quantized_test_accuracy"], row["metrics"]["model_bytes"],
                         row["metrics"]["arena_bytes"]])
    for row in rows:  # on the front: no other row at least as good in all three and better in one
        assert row["pareto"] == (not any(np.all(point(o) <= point(row)) and np.any(point(o) < point(row))
                                         for o in rows))
    assert any(r["pareto"] for r in rows)
    Image.open(project_copy / "build/experiments/experiments.png").verify()


def test_a_model_kept_as_loaded_says_so_instead_of_an_empty_training_curve(built_project, tmp_path):
    """train.epochs: 0 on a loaded model: the Training section says it was kept as loaded and draws no (empty)
    training curves; a trained model's section still has its curves."""
    from tinyedge_tasks.engine.pipeline import StageContext
    from tinyedge_tasks.report.page import Page
    from tinyedge_tasks.stages import report
    train = built_project / "build/train"
    metrics = {**json.loads((train / "metrics.json").read_text()), "epochs": 0, "kept_as_loaded": True}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "history.json").write_text("{}")
    pages = {}
    for name, folder in (("kept", tmp_path), ("trained", train)):
        inputs = {"train/metrics.json": folder / "metrics.json", "train/history.json": folder / "history.json",
                  "train/augmented.npz": train / "augmented.npz"}
        pages[name] = Page("t")
        ctx = StageContext(stage=None, config=None, inputs=inputs, sources=[], out=tmp_path, root=tmp_path,
                           state=tmp_path)
        report._training(pages[name], ctx)
    kept, trained = "".join(pages["kept"].html), "".join(pages["trained"].html)
    assert "0: kept as loaded" in kept and "not trained, so there are no training curves" in kept
    assert 'alt="training curves"' not in kept and 'alt="training curves"' in trained
    assert "kept as loaded" not in trained


def test_features_are_drawn_as_gray_pictures_of_their_own_shape():
    """Float features (a spectrogram, a flat window) have no pixels: each is drawn min to max in gray."""
    from tinyedge_tasks.report.page import _as_gray
    frame = np.linspace(-3, 5, 12 * 8, dtype=np.float32).reshape(12, 8, 1)
    gray = _as_gray(frame)
    assert gray.shape == (12, 8, 1) and gray.dtype == np.uint8 and gray.min() == 0 and gray.max() == 255
    assert _as_gray(np.arange(24, dtype=np.float32)).shape == (1, 24, 1)
    assert not _as_gray(np.full((4, 4), 2.0, np.float32)).any()   # a constant sample: black, not NaN
