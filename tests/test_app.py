"""The Streamlit page, run headless with Streamlit's AppTest (no browser, no server).

The drawing canvas renders as an unknown element here and always returns an empty
drawing, so drawing itself is covered by tests/test_browser.py; everything else
(model states, model panel, Read on an empty canvas, uploads, Tesseract missing, the
number mode, texts for a letters model) is here.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytesseract
import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from handwriting.model import MLPClassifier
from tests.browser_helpers import (
    NUMBER_CANVAS,
    ROOT,
    canvas_rgba,
    ten_strokes,
    write_promoted_model,
)

APP = str(ROOT / "app" / "streamlit_app.py")
TIMEOUT = 60  # seconds per script run; the machine is slow and shared


def run_app(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("HANDWRITING_MODEL_DIR", str(model_dir))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_no_model_shows_the_command_to_train_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = run_app(tmp_path, monkeypatch)
    message = texts(at.info)
    assert "No trained model yet" in message
    assert "python train.py" in message and str(tmp_path / "model.ckpt") in message
    assert not at.error
    assert not at.button  # nothing to read with


def test_corrupt_model_shows_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model.ckpt").write_bytes(b"\x00 definitely not a checkpoint")
    at = run_app(tmp_path, monkeypatch)
    message = texts(at.error)
    assert "cannot be used" in message and str(tmp_path / "model.ckpt") in message
    assert "python train.py" in message
    assert not at.button


def test_model_panel_shows_the_loaded_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_promoted_model(tmp_path, val_acc=0.9321, test_acc=0.9105)
    at = run_app(tmp_path, monkeypatch)
    metrics = {m.label: m.value for m in at.sidebar.metric}
    assert metrics == {"Validation accuracy": "93.21 %", "Test accuracy": "91.05 %"}
    sidebar = texts(at.sidebar.markdown) + texts(at.sidebar.caption)
    assert str(tmp_path / "model.ckpt") in sidebar
    assert "MLP 784 → 32 → 16 → 10" in sidebar
    assert "0.002" in sidebar  # learning rate
    assert "EmbeddedMNIST" in sidebar and "2026-01-02T03:04:05" in sidebar
    # Never scored on real drawings: the page says so instead of implying the test number holds.
    assert "never scored on real drawings" in texts(at.sidebar.caption).lower()


def test_model_panel_shows_accuracy_on_real_drawings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_promoted_model(tmp_path, drawn={"drawn/acc": 0.9812, "drawn/worst_writer_acc": 0.951})
    at = run_app(tmp_path, monkeypatch)
    metrics = {m.label: m.value for m in at.sidebar.metric}
    assert metrics["Real drawings (held-out writers)"] == "98.1%"
    assert "Test accuracy" in metrics
    assert "never scored" not in texts(at.sidebar.caption).lower()


def test_read_on_an_empty_canvas_asks_for_a_digit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_promoted_model(tmp_path)
    at = run_app(tmp_path, monkeypatch)
    assert not at.warning
    at.button(key="read_digit").click().run()
    assert not at.exception
    assert "Draw a digit first" in texts(at.warning)
    assert not at.main.metric  # no guess shown


def test_live_prediction_on_an_empty_canvas_makes_no_guess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_promoted_model(tmp_path)
    at = run_app(tmp_path, monkeypatch)
    at.toggle[0].set_value(True).run()  # "Live prediction"
    assert "Draw a digit first" in texts(at.warning)
    assert not at.main.metric


def test_newly_promoted_model_is_picked_up_without_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_promoted_model(tmp_path, val_acc=0.5)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    at = run_app(tmp_path, monkeypatch)
    assert at.sidebar.metric[0].value == "50.00 %"
    write_promoted_model(tmp_path, val_acc=0.75)
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    at.run()
    assert at.sidebar.metric[0].value == "75.00 %"


def _upload(at: AppTest, name: str, data: bytes, mime: str = "image/png") -> AppTest:
    at.radio(key="single_source").set_value("Upload an image").run()
    at.file_uploader(key="digit_upload").set_value((name, data, mime)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _digit_png(mnist: tuple[np.ndarray, np.ndarray], index: int) -> bytes:
    """Dark ink on white paper, 140x140: how a scanned digit arrives."""
    ink = (255 - np.round(mnist[0][index] * 255)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(ink).resize((140, 140), Image.Resampling.BILINEAR).save(buffer, format="PNG")
    return buffer.getvalue()


def _first_well_read_digit(model: MLPClassifier, mnist: tuple[np.ndarray, np.ndarray]) -> int:
    """A held-out digit the model reads right with a clear margin (so the test checks the
    app's wiring, not the tiny model's accuracy)."""
    images, labels = mnist
    with torch.no_grad():
        probs = model.predict_proba(torch.as_tensor(images[9000:9100]))
    for offset, p in enumerate(probs):
        if int(p.argmax()) == labels[9000 + offset] and float(p.max()) > 0.9:
            return 9000 + offset
    raise AssertionError("the tiny model reads none of 100 held-out digits confidently")


def test_uploaded_digit_is_read_with_chart_input_and_tesseract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained_model: MLPClassifier, mnist
) -> None:
    write_promoted_model(tmp_path, trained_model)
    index = _first_well_read_digit(trained_model, mnist)
    at = _upload(run_app(tmp_path, monkeypatch), "digit.png", _digit_png(mnist, index))
    metrics = {m.label: m.value for m in at.main.metric}
    assert metrics["Model reads"] == str(mnist[1][index])
    assert metrics["Confidence"].endswith("%") and float(metrics["Confidence"][:-2]) > 50
    assert "Top 3:" in texts(at.main.caption)
    captions = [c for image in at.main.image for c in image.captions]
    assert "What the model sees (28x28, enlarged)" in captions  # the enlarged model input
    (chart,) = at.main.get("vega_lite_chart")  # the probability bar chart, top 3 highlighted
    assert '"bar"' in chart.proto.spec and '"top 3"' in chart.proto.spec
    assert "Tesseract on the same 28x28 input" in texts(at.main.markdown)
    assert not at.error


def test_unreadable_upload_shows_an_error_and_the_app_keeps_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained_model: MLPClassifier, mnist
) -> None:
    write_promoted_model(tmp_path, trained_model)
    at = _upload(run_app(tmp_path, monkeypatch), "broken.png", b"\x89PNG\r\n\x1a\n garbage")
    assert "could not be read as an image" in texts(at.error) and "broken.png" in texts(at.error)
    assert not at.main.metric
    # ... and a good upload afterwards still works
    index = _first_well_read_digit(trained_model, mnist)
    at.file_uploader(key="digit_upload").set_value(
        ("ok.png", _digit_png(mnist, index), "image/png")
    ).run()
    assert not at.error and not at.exception
    assert {m.label: m.value for m in at.main.metric}["Model reads"] == str(mnist[1][index])


def test_blank_upload_makes_no_guess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_promoted_model(tmp_path)
    buffer = io.BytesIO()
    Image.new("RGB", (120, 120), "white").save(buffer, format="PNG")
    at = _upload(run_app(tmp_path, monkeypatch), "blank.png", buffer.getvalue())
    assert "No digit found" in texts(at.warning)
    assert not at.main.metric


def test_missing_tesseract_is_a_note_and_the_model_still_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained_model: MLPClassifier, mnist
) -> None:
    monkeypatch.setenv("TESSERACT_CMD", "/nonexistent/tesseract")
    # ocr.py copies TESSERACT_CMD into pytesseract's global; setattr restores it afterwards.
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    st.cache_data.clear()  # the sidebar's Tesseract status is cached for a few minutes
    try:
        write_promoted_model(tmp_path, trained_model)
        index = _first_well_read_digit(trained_model, mnist)
        at = _upload(run_app(tmp_path, monkeypatch), "digit.png", _digit_png(mnist, index))
        assert "Tesseract not found" in texts(at.sidebar.caption)
        assert "Tesseract is not available" in texts(at.main.info)
        assert {m.label: m.value for m in at.main.metric}["Model reads"] == str(mnist[1][index])
        assert not at.error
    finally:
        st.cache_data.clear()


# --------------------------------------------------------------------------- number mode


def test_number_mode_on_an_empty_canvas_asks_for_a_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_promoted_model(tmp_path)
    at = run_app(tmp_path, monkeypatch)
    mode = at.radio(key="mode")
    assert mode.options == ["Single digit", "Number (several digits)"]
    assert mode.value == "single"
    mode.set_value("number").run()
    assert not at.exception
    assert "Write **a number** on one line" in texts(at.main.markdown)
    assert "Write a number below" in texts(at.main.info)
    assert not at.main.metric and not at.warning
    at.button(key="read_number").click().run()
    assert not at.exception
    assert "Write a number first" in texts(at.warning)
    assert not at.main.metric  # no guess shown


def _number_png() -> bytes:
    """"10" in dark ink on white paper (the browser test draws the same strokes)."""
    ink = canvas_rgba(ten_strokes(), size=NUMBER_CANVAS)[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(255 - ink).save(buffer, format="PNG")
    return buffer.getvalue()


def test_number_mode_reads_an_uploaded_number_character_by_character(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained_model: MLPClassifier
) -> None:
    write_promoted_model(tmp_path, trained_model)
    at = run_app(tmp_path, monkeypatch)
    at.radio(key="mode").set_value("number").run()
    at.radio(key="number_source").set_value("Upload an image").run()
    at.file_uploader(key="number_upload").set_value(("ten.png", _number_png(), "image/png")).run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.main.metric}
    assert metrics["Model reads"] == "10"
    assert metrics["Confidence"].endswith("%") and metrics["Least sure digit"].endswith("%")
    captions = [c for image in at.main.image for c in image.captions]
    assert "2 digits found: the ink of each in its own colour" in captions  # the grouping
    tiles = "".join(h.proto.body for h in at.get("html") if "character-tiles" in h.proto.body)
    assert re.findall(r"<figcaption[^>]*>([^<]*?) · ", tiles) == ["1", "0"]
    assert "Tesseract on the whole line" in texts(at.main.markdown)


def test_a_letters_model_is_asked_for_characters_not_digits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    letters = [chr(ord("A") + i) for i in range(26)]
    torch.manual_seed(0)
    write_promoted_model(
        tmp_path, MLPClassifier(hidden_sizes=(16,), num_classes=26, class_names=letters)
    )
    at = run_app(tmp_path, monkeypatch)
    assert at.radio(key="mode").options == ["Single character", "Text (several characters)"]
    assert "Draw **one character**" in texts(at.main.markdown)
    at.button(key="read_digit").click().run()
    assert "Draw a character first" in texts(at.warning)
    at.radio(key="mode").set_value("number").run()
    at.button(key="read_number").click().run()
    assert "Write some characters first" in texts(at.warning)
    shown = texts(at.main.markdown) + texts(at.main.info) + texts(at.warning)
    assert "digit" not in shown.lower()


def _calibrated(**values: float):
    """A calibration whose thresholds force one verdict (the app's wiring is under test
    here; how well the thresholds are chosen is tests/test_confidence.py's job)."""
    from handwriting.calibration import Calibration
    from handwriting.junk_detector import JunkDetector

    torch.manual_seed(0)
    settings = {"temperature": 1.0, "answer_threshold": 0.0, "junk_threshold": 1.0} | values
    return Calibration(detector=JunkDetector(), fitted_on="test drawings", **settings)


def test_an_unsure_reading_shows_the_two_best_guesses_not_an_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained_model: MLPClassifier, mnist
) -> None:
    write_promoted_model(tmp_path, trained_model, calibration=_calibrated(answer_threshold=1.0))
    index = _first_well_read_digit(trained_model, mnist)
    at = _upload(run_app(tmp_path, monkeypatch), "digit.png", _digit_png(mnist, index))
    metrics = {m.label: m.value for m in at.main.metric}
    assert metrics["Model reads"].endswith("?") and " or " in metrics["Model reads"]
    assert metrics["Model reads"].split(" or ")[0] == str(mnist[1][index])  # best guess first
    assert "Not sure: maybe" in texts(at.main.warning)
    assert not at.error and not at.exception


def test_junk_is_refused_as_not_a_digit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained_model: MLPClassifier
) -> None:
    write_promoted_model(tmp_path, trained_model, calibration=_calibrated(junk_threshold=0.0))
    noise = (np.random.default_rng(0).random((120, 120)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    at = _upload(run_app(tmp_path, monkeypatch), "noise.png", buffer.getvalue())
    assert "does not look like a digit" in texts(at.error)
    assert {m.label: m.value for m in at.main.metric}["Model reads"] == "—"
    assert not at.exception
    assert "calibrated on test drawings" in texts(at.sidebar.markdown)  # the model panel says so
