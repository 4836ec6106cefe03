"""Pictures and the --report page: to_pandas(), plot() for per-tensor verify and compare, and one
self-contained HTML page, rendered in headless Chromium (Debian's package; .ci/run installs it) and
checked on the screenshot: the tables' pass/fail colours and the plot are on the page."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import tflite_inverter as ti
from tflite_inverter.check.compare import CompareReport, OutputComparison, TensorComparison
from tflite_inverter.check.verify import OutputReport, TensorReport, VerifyReport
from tflite_inverter.display import write_report_page


def verify_report(with_tensors: bool = True) -> VerifyReport:
    outputs = [OutputReport("boxes", "Identity", (2016, 18), "float32", 0.5, 0.01, 0.1, 131.0, 1e-5, 0.0131, False),
               OutputReport("scores", "Identity_1", (2016, 1), "float32", 1e-5, 1e-6, 1e-6, 18.0, 1e-6, 0.0018, True)]
    tensors = [TensorReport(i, "CONV_2D", f"conv_{i}", 1e-6 * (10 ** (i // 4)), 1.0, 1e-4, 1e-6 * (10 ** (i // 4)) <= 1e-4)
               for i in range(16)] if with_tensors else []
    return VerifyReport("palm.tflite", "saved_model", "serving_default", 3, outputs=outputs, tensors=tensors)


def test_verify_to_pandas_and_plot_mark_the_first_divergence():
    report = verify_report()
    frame = report.to_pandas()
    assert list(frame["tensor"]) == [f"conv_{i}" for i in range(16)]
    np.testing.assert_allclose(frame["error_over_tolerance"], frame["max_abs_error"] / frame["tolerance"])
    assert list(report.to_pandas("outputs")["name"]) == ["boxes", "scores"]
    figure = report.plot()
    (ax,) = figure.axes
    first = report.first_divergence
    assert first.tensor == "conv_12"
    assert any("first divergence: op 12 CONV_2D" in text.get_text() for text in ax.texts)
    assert ax.get_yscale() == "log"
    with pytest.raises(ti.TfliteInverterError, match="per_tensor=True"):
        verify_report(with_tensors=False).plot()


def test_compare_plot_shows_steps_when_both_are_quantized():
    tensors = [TensorComparison(f"t{i}", "ADD", "ADD", 0.1 * i, 0.01, 1.0, 0.01, 10.0 * i) for i in range(5, 0, -1)]
    report = CompareReport("a.tflite", "b.tflite", 4, tensors=tensors)
    figure = report.plot()
    assert figure.axes[0].get_xlabel() == "max error (quantization steps)"
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["t5", "t4", "t3", "t2", "t1"]
    frame = report.to_pandas()
    np.testing.assert_allclose(frame["relative_error"], [0.5, 0.4, 0.3, 0.2, 0.1])


def _colour_fraction(pixels: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 6) -> float:
    return float(np.mean(np.all(np.abs(pixels[..., :3].astype(int) - rgb) <= tolerance, axis=-1)))


def test_the_report_page_renders_in_headless_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed (apt-get install -y chromium; .ci/run does it)"
    comparison = CompareReport("a.tflite", "b.tflite", 3, outputs=[
        OutputComparison("probs", (1, 10), 0.1, 0.01, 1.0, 0.004, 25.0, 0.5, 1.0)], random_inputs=True)
    page = write_report_page(tmp_path / "report.html", "tflite-inverter verify palm.tflite", [verify_report(), comparison])
    text = page.read_text()
    assert "<img alt=\"plot\" src=\"data:image/png;base64," in text and "http" not in text  # self-contained
    shot = tmp_path / "shot.png"
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--screenshot={shot}", "--window-size=1100,1600", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.exists(), done.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1600, 1100)
    assert _colour_fraction(pixels, (0xd4, 0xed, 0xda)) > 0.001  # a passing row (green)
    assert _colour_fraction(pixels, (0xf8, 0xd7, 0xda)) > 0.001  # a failing row and the FAILED badge (red)
    assert _colour_fraction(pixels, (0xc6, 0x28, 0x28), tolerance=30) > 0.0002  # the plot's divergence marks
    assert _colour_fraction(pixels, (255, 255, 255)) < 0.97  # not a blank page
