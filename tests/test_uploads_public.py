"""Uploads checked before anything is shown, the public mode, Clear/Undo/restore state and
saving a drawing once (issue 12): the logic in uploads.py, deployment.py, canvas_state.py
and collection.py, and the page (Streamlit's AppTest) in both modes."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from handwriting import canvas_state, collection, deployment, uploads
from tests.browser_helpers import ROOT, canvas_rgba, one_stroke, write_promoted_model

APP = str(ROOT / "app" / "streamlit_app.py")


def _png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@functools.cache
def bad_uploads() -> dict[str, tuple[str, bytes, str]]:
    """name -> (file name, content, what its message must say)."""
    good = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)))
    return {
        "empty": ("empty.png", b"", "empty (0 bytes)"),
        "text-as-png": ("notes.png", b"hello, this is a text file\n" * 20, "not a PNG, JPEG"),
        "truncated": ("cut.png", good[: len(good) // 2], "damaged or cut short"),
        "huge": ("huge.png", _png(Image.new("L", (8000, 8000), 255)), "8000x8000 pixels"),
        "tiff-as-png": ("scan.png", _png(Image.new("L", (50, 50), 255), "TIFF"), "not a PNG, JPEG"),
    }


@pytest.mark.parametrize("case", list(bad_uploads()))
def test_each_bad_upload_is_one_plain_message(case: str) -> None:
    name, data, expected = bad_uploads()[case]
    with pytest.raises(uploads.UploadError) as info:
        uploads.checked(name, data)
    message = str(info.value)
    assert expected in message and f"'{name}'" in message
    for leak in (" at 0x", "BytesIO", "TIFF", "the uploaded data", "Traceback"):
        assert leak not in message, message
    assert message[0].isupper() or message.startswith("'")


def test_a_good_upload_comes_with_a_small_preview() -> None:
    checked = uploads.checked("big.png", _png(Image.new("L", (2000, 1000), 255)))
    assert checked.image.size == (2000, 1000)
    assert max(checked.preview.size) == uploads.PREVIEW_SIDE


def test_public_mode_is_one_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(deployment.PUBLIC_ENV, raising=False)
    assert not deployment.deployment().public  # `streamlit run` on your machine: private
    assert deployment.deployment({"public": True}).public
    monkeypatch.setenv(deployment.PUBLIC_ENV, "1")
    public = deployment.deployment()
    assert public.public and public.max_upload_mb < uploads.MAX_UPLOAD_MB
    monkeypatch.setenv(deployment.PUBLIC_ENV, "0")  # the environment overrides the secret
    assert not deployment.deployment({"public": True}).public
    rows = deployment.public_rows({"File": "/srv/m.ckpt", "Run": "/runs/x", "Code": "abc",
                                   "Confidence": "not calibrated; refit with `handwriting x`",
                                   "Test accuracy": "91 %"})
    assert rows == {"Confidence": "not calibrated", "Test accuracy": "91 %"}


def test_clear_undo_and_restore_steer_the_canvas() -> None:
    state: dict = {}
    first = canvas_state.initial_drawing(state, "digit")
    assert first["objects"] == []
    rgba = np.zeros((4, 4, 4), np.uint8)
    assert canvas_state.remember(state, "digit", {"objects": ["a", "b"]}, rgba) is rgba
    # The canvas came back (mode switch): it sends nothing, the kept drawing stands for it.
    canvas_state.restore(state, "digit")
    assert canvas_state.initial_drawing(state, "digit")["objects"] == ["a", "b"]
    assert canvas_state.remember(state, "digit", None, None) is rgba
    assert canvas_state.undo(state, "digit")
    assert canvas_state.initial_drawing(state, "digit")["objects"] == ["a"]
    canvas_state.clear(state, "digit")
    cleared = canvas_state.initial_drawing(state, "digit")
    assert cleared["objects"] == [] and cleared != first  # a new value: the canvas redraws
    assert canvas_state.remember(state, "digit", None, None) is None
    assert not canvas_state.undo(state, "digit")


def test_only_a_canvas_that_left_the_page_counts_as_back() -> None:
    """Streamlit keeps a keyed widget's value while it is on the page; a rerun cut short by
    a stroke drops nothing. Restoring a canvas that never left would reload it and reset
    its toolbar's history (its "Reset canvas" would bring the drawing back)."""
    assert canvas_state.came_back({}, "digit_canvas")  # first run, or after a mode switch
    assert not canvas_state.came_back({"digit_canvas": {"drawing": None}}, "digit_canvas")
    blank = np.zeros((4, 4, 4), np.uint8)
    assert canvas_state.digest(None) is None
    assert canvas_state.digest(blank) == canvas_state.digest(blank.copy())
    assert canvas_state.digest(blank) != canvas_state.digest(blank + 1)


def test_saving_the_same_drawing_twice_keeps_it_once(tmp_path: Path) -> None:
    rgba = canvas_rgba([one_stroke()])
    classes = list("0123456789")
    path, new = collection.save_once(rgba, "1", classes, tmp_path)
    again, new_again = collection.save_once(rgba, "1", classes, tmp_path)
    assert new and not new_again and again == path
    assert collection.drawing_counts(tmp_path) == {"1": 1}
    collection.save_once(rgba, "7", classes, tmp_path)  # a corrected label is a new file
    assert collection.drawing_counts(tmp_path) == {"1": 1, "7": 1}


# --------------------------------------------------------------------------- the page


def run_app(model_dir: Path, monkeypatch: pytest.MonkeyPatch, public: bool = False) -> AppTest:
    monkeypatch.setenv("HANDWRITING_MODEL_DIR", str(model_dir))
    monkeypatch.setenv(deployment.PUBLIC_ENV, "1" if public else "0")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("mode", ["single", "number"])
def test_bad_uploads_show_one_message_and_nothing_else_in_both_modes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    write_promoted_model(tmp_path)
    at = run_app(tmp_path, monkeypatch)
    at.radio(key="mode").set_value(mode).run()
    source, uploader = ("single_source", "digit_upload") if mode == "single" else (
        "number_source", "number_upload")
    at.radio(key=source).set_value("Upload an image").run()
    for name, data, expected in bad_uploads().values():
        at.file_uploader(key=uploader).set_value((name, data, "image/png")).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert len(at.error) == 1 and expected in at.error[0].value, (name, texts(at.error))
        assert not at.main.image and not at.main.metric, name  # nothing of the file shown


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_public_mode_hides_paths_commands_and_saving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = run_app(tmp_path, monkeypatch, public=True)  # no model yet
    page = texts(at.info) + texts(at.error)
    assert "not available" in page
    assert str(tmp_path) not in page and "python train.py" not in page
    write_promoted_model(tmp_path)
    at = run_app(tmp_path, monkeypatch, public=True)
    sidebar = texts(at.sidebar.markdown) + texts(at.sidebar.caption)
    assert str(tmp_path) not in sidebar and "/runs/test-run" not in sidebar
    assert "MLP 784" in sidebar  # the model is still described
    at.radio(key="single_source").set_value("Upload an image").run()
    assert f"up to {deployment.PUBLIC_UPLOAD_MB} MB" in texts(at.main.caption)
    private = run_app(tmp_path, monkeypatch)
    assert str(tmp_path) in texts(private.sidebar.caption)  # the owner sees the file
