"""benchmarks/confidence.py on a small synthetic UNIPEN file with a tiny model and a small
detector: the report is written with every measure in range. No shared data, no network."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import confidence
from handwriting.data.pendigits import TRAIN_FILE
from tests.browser_helpers import load_mnist_sample, train_tiny_model, write_promoted_model
from tests.test_real_drawings import unipen_text


def test_report_json_and_reliability_diagram(tmp_path: Path) -> None:
    (tmp_path / TRAIN_FILE).write_text(unipen_text(samples=2))
    images, labels = load_mnist_sample()
    write_promoted_model(tmp_path / "promoted", train_tiny_model(images, labels, n=3000))
    out = tmp_path / "CONF.md"
    assert confidence.main([
        "--model", str(tmp_path / "promoted"), "--unipen-file", str(tmp_path / TRAIN_FILE),
        "--val-writers", "2", "--test-writers", "2", "--junk", "64", "--junk-count", "300",
        "--detector-epochs", "2", "--out", str(out)]) == 0
    text = out.read_text()
    for measure in ("expected calibration error, calibrated", "answered drawings that are right",
                    "junk refused", "energy"):
        assert measure in text
    results = json.loads(out.with_suffix(".json").read_text())
    assert results["test_writers"] == 2 and results["junk"] == 64
    for key in ("ece", "ece_uncalibrated", "answered", "digits_refused", "junk_refused"):
        assert 0.0 <= results["test"][key] <= 1.0, key
    assert set(results["junk_refused_by_kind"]) == set(confidence.KINDS)
    assert (tmp_path / "confidence_reliability.png").read_bytes()[:4] == b"\x89PNG"
