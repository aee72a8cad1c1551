"""Labelled drawings saved from the app: faithful files, refused bad input, and the
evaluation that reads them back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from handwriting import collection
from handwriting.cli import main as cli
from handwriting.evaluate import evaluate_folder
from handwriting.inference import Predictor
from handwriting.preprocessing import EmptyImageError, prepare_canvas, prepare_image
from tests.browser_helpers import canvas_rgba, one_stroke, write_promoted_model, zero_stroke

DIGITS = [str(d) for d in range(10)]


def test_saved_drawing_reads_back_as_the_model_saw_it(tmp_path: Path) -> None:
    rgba = canvas_rgba([zero_stroke()], width=18)
    path = collection.save_drawing(rgba, "0", DIGITS, tmp_path)
    assert path.parent == tmp_path / "train" / "0" and path.suffix == ".png"
    np.testing.assert_array_equal(prepare_image(path), prepare_canvas(rgba))
    assert not list(tmp_path.rglob(".saving-*"))  # no temporary file left behind


def test_transparent_canvas_drawing_survives_the_round_trip(tmp_path: Path) -> None:
    rgba = canvas_rgba([one_stroke()]).copy()
    rgba[..., 3] = np.where(rgba[..., 0] > 0, 255, 0)  # ink on a transparent layer
    path = collection.save_drawing(rgba, "1", DIGITS, tmp_path)
    np.testing.assert_array_equal(prepare_image(path), prepare_canvas(rgba))


def test_empty_canvas_or_unknown_label_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(EmptyImageError):
        collection.save_drawing(canvas_rgba([]), "3", DIGITS, tmp_path)
    with pytest.raises(ValueError, match="not one of the model's classes"):
        collection.save_drawing(canvas_rgba([one_stroke()]), "x", DIGITS, tmp_path)
    with pytest.raises(ValueError, match="folder name"):
        collection.save_drawing(canvas_rgba([one_stroke()]), "../1", ["../1", "2"], tmp_path)
    assert not any(tmp_path.rglob("*.png"))
    assert collection.drawing_counts(tmp_path) == {}


def test_counts_per_label_and_default_dir_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(collection.DRAWINGS_ENV, str(tmp_path / "mine"))
    assert collection.default_drawings_dir() == tmp_path / "mine"
    # Two different "1"s (pen widths 20 and 26) and a "0"; the same drawing would be kept once.
    for label, width in (("1", 20), ("1", 26), ("0", 20)):
        stroke = one_stroke() if label == "1" else zero_stroke()
        collection.save_drawing(canvas_rgba([stroke], width=width), label, DIGITS)
    assert collection.drawing_counts() == {"0": 1, "1": 2}


def test_evaluate_folder_scores_saved_drawings_by_class_name(tmp_path: Path, trained_model) -> None:
    model_dir = tmp_path / "model"
    write_promoted_model(model_dir, trained_model)
    drawings = tmp_path / "drawings"
    strokes = {"1": [one_stroke(), one_stroke(200)], "0": [zero_stroke(), zero_stroke(240)]}
    for label, shapes in strokes.items():
        for shape in shapes:
            collection.save_drawing(canvas_rgba([shape], width=16), label, DIGITS, drawings)
    evaluation, classes = evaluate_folder(model_dir / "model.ckpt", drawings)
    # Only "0" and "1" folders exist: labels must map to the model's classes by name.
    assert sorted(set(evaluation.labels.tolist())) == [0, 1]
    predictor = Predictor.from_checkpoint(model_dir / "model.ckpt")
    expected = np.mean([
        predictor.predict_canvas(canvas_rgba([shape], width=16)).label == label
        for label, shapes in strokes.items() for shape in shapes
    ])
    assert evaluation.accuracy == pytest.approx(expected)
    assert classes == DIGITS


def test_cli_evaluates_a_folder_and_explains_a_missing_root(
    tmp_path: Path, trained_model, capsys: pytest.CaptureFixture[str]
) -> None:
    write_promoted_model(tmp_path / "model", trained_model)
    collection.save_drawing(canvas_rgba([one_stroke()]), "1", DIGITS, tmp_path / "drawings")
    model = str(tmp_path / "model")
    assert cli(["evaluate", "--data", "folder", "--root", str(tmp_path / "drawings"),
                "--model", model]) == 0
    printed = capsys.readouterr().out
    assert "on 1 images" in printed and "2:n/a" in printed  # no "2" drawings: no accuracy
    assert cli(["evaluate", "--data", "folder", "--model", model]) == 2
    assert "--root" in capsys.readouterr().err


@pytest.mark.parametrize(("value", "enabled"), [(None, True), ("1", True), ("0", False),
                                                ("off", False), (" False ", False)])
def test_saving_can_be_switched_off_for_a_public_app(
    value: str | None, enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv(collection.SAVE_ENV, raising=False)
    else:
        monkeypatch.setenv(collection.SAVE_ENV, value)
    assert collection.saving_enabled() is enabled
