"""Calibrated confidence, "not sure" and "not a digit" (calibration.py, confidence.py,
junk.py, junk_detector.py, answers.py): fitting, storing, loading and using them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from handwriting import answers
from handwriting.calibration import (
    NOT_A_DIGIT,
    NOT_SURE,
    READ,
    RUN_FILE,
    Calibration,
    CalibrationError,
    choose_answer_threshold,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from handwriting.confidence import ConfidenceFit, score
from handwriting.data.embedded import EmbeddedMNIST
from handwriting.data.types import LabeledImages
from handwriting.inference import Predictor
from handwriting.junk import KINDS, make_junk
from handwriting.junk_detector import JunkDetector, train_detector
from handwriting.promotion import promote
from handwriting.runs import Candidate
from tests.helpers import make_run_dir


def synthetic_logits(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose labels are drawn from softmax(logits / temperature): a model exactly
    ``temperature`` times over-confident."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 10))
    probs = softmax(logits, temperature)
    labels = np.array([rng.choice(10, p=p) for p in probs])
    return logits, labels


def test_temperature_scaling_recovers_the_true_temperature_and_removes_the_calibration_error() -> None:
    logits, labels = synthetic_logits(4000, temperature=2.0)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(2.0, abs=0.15)
    raw, calibrated = softmax(logits), softmax(logits, fitted)
    assert expected_calibration_error(raw, labels) > 0.1  # over-confident
    assert expected_calibration_error(calibrated, labels) < 0.03
    # One number: the answer never changes, only how sure it is.
    assert (raw.argmax(1) == calibrated.argmax(1)).all()


def test_expected_calibration_error_of_known_cases() -> None:
    labels = np.zeros(100, dtype=int)
    sure_and_right = np.tile(np.eye(10)[0], (100, 1))
    assert expected_calibration_error(sure_and_right, labels) == pytest.approx(0.0)
    sure_and_half_wrong = sure_and_right.copy()
    sure_and_half_wrong[:50] = np.eye(10)[1]
    assert expected_calibration_error(sure_and_half_wrong, labels) == pytest.approx(0.5)


def test_answer_threshold_does_what_it_claims_on_a_fixed_set() -> None:
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.3, 1.0, 2000)
    right = rng.random(2000) < confidence  # calibrated by construction
    threshold = choose_answer_threshold(confidence, right, 0.99)
    answered = confidence >= threshold
    assert right[answered].mean() >= 0.99 and confidence[answered].mean() >= 0.99
    # The lowest such threshold: one more answer (the next lower confidence) misses the target.
    below = confidence < threshold
    if below.any():
        extra = answered | (confidence == confidence[below].max())
        assert min(right[extra].mean(), confidence[extra].mean()) < 0.99


def test_answer_threshold_must_hold_for_every_writer() -> None:
    confidence = np.array([0.99, 0.98, 0.97, 0.96, 0.99, 0.98, 0.97, 0.96])
    right = np.array([True, True, True, True, True, False, True, True])
    writers = np.array(["a"] * 4 + ["b"] * 4)
    pooled = choose_answer_threshold(confidence, right, 0.85)
    per_writer = choose_answer_threshold(confidence, right, 0.85, writers)
    assert pooled <= 0.96  # 7 of 8 right pooled
    assert per_writer == pytest.approx(0.99)  # writer b is wrong at 0.98: answer only above it


def test_answer_threshold_answers_nothing_when_the_target_is_out_of_reach() -> None:
    confidence, right = np.array([0.9, 0.8]), np.array([False, False])
    threshold = choose_answer_threshold(confidence, right, 0.99)
    assert (confidence < threshold).all()


def quick_detector(seed: int = 0) -> JunkDetector:
    """Weak but quick: for storing, loading and wiring (the real one is measured below)."""
    digits = EmbeddedMNIST().load().train.images[:2000]
    junk = make_junk(400, "train", exact=False)
    return train_detector(digits, junk.images[~junk.blank], seed=seed, epochs=3)


@pytest.fixture(scope="module")
def detector() -> JunkDetector:
    return quick_detector()


def test_junk_is_seeded_split_apart_and_covers_every_kind() -> None:
    a, b = make_junk(48, "test"), make_junk(48, "test")
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, make_junk(48, "train").images)
    assert set(a.kinds) == set(KINDS)
    assert (a.images[~a.blank].max(axis=(1, 2)) > 0).all()  # every non-blank one has ink
    with pytest.raises(ValueError, match="unknown junk kinds"):
        make_junk(4, "test", kinds=("circle",))


@pytest.mark.slow
def test_the_default_detector_refuses_junk_and_not_real_digits() -> None:
    """The detector every run uses (conf/config.yaml defaults), cached per machine: CI's
    `python train.py` trains it first; elsewhere this test trains it once (minutes)."""
    fit = ConfidenceFit()
    detector, held_out = fit.detector_for(None)  # MNIST digits it never trained on
    digit_scores = detector.junk_probability(held_out)
    threshold = float(max(0.5, np.quantile(digit_scores, 1 - fit.digit_refusal)))
    junk = make_junk(400, "test")  # other seeds, other photos, drawn through the full canvas
    refused = junk.blank | (detector.junk_probability(junk.images) > threshold)
    by_kind = {k: float(refused[junk.kinds == k].mean()) for k in KINDS}
    assert refused.mean() >= 0.9, by_kind
    assert min(by_kind.values()) >= 0.5, by_kind
    assert (digit_scores > threshold).mean() <= 0.02


def test_detector_is_deterministic_and_round_trips_through_a_safe_load(detector: JunkDetector) -> None:
    images = make_junk(16, "val").images
    np.testing.assert_array_equal(quick_detector().junk_probability(images), detector.junk_probability(images))
    buffer = io.BytesIO()
    torch.save(detector.to_dict(), buffer)
    buffer.seek(0)
    loaded = JunkDetector.from_dict(torch.load(buffer, weights_only=True))
    np.testing.assert_array_equal(loaded.junk_probability(images), detector.junk_probability(images))


def test_a_detector_with_other_shapes_is_refused_before_it_is_built(detector: JunkDetector) -> None:
    stored = detector.to_dict()
    stored["state_dict"]["0.weight"] = torch.zeros(300000, 1)
    with pytest.raises(ValueError, match="shapes"):
        JunkDetector.from_dict(stored)


def make_calibration(detector: JunkDetector | None, **values: float) -> Calibration:
    settings = {"temperature": 2.0, "answer_threshold": 0.9, "junk_threshold": 0.5} | values
    return Calibration(detector=detector, fitted_on="a test", metrics={"val_ece": 0.01}, **settings)


def test_calibration_is_stored_with_the_model_and_used_when_reading(
    tmp_path: Path, detector: JunkDetector, trained_model, mnist
) -> None:
    from tests.browser_helpers import write_promoted_model

    path = write_promoted_model(tmp_path, trained_model, calibration=make_calibration(detector))
    predictor = Predictor.from_checkpoint(path)
    assert predictor.calibration is not None and predictor.calibration.temperature == 2.0
    images = mnist[0][9000:9010]
    with torch.no_grad():
        logits = trained_model(torch.as_tensor(images).reshape(10, -1)).numpy()
    np.testing.assert_allclose(predictor.probabilities(images), softmax(logits, 2.0), atol=1e-5)
    plain = Predictor(trained_model)
    assert plain.calibration is None and "not calibrated" in plain.calibration_note


def test_verdicts_follow_the_thresholds(detector: JunkDetector, trained_model, mnist) -> None:
    digit = mnist[0][9000]
    # The junk threshold as fitting chooses it: 1% of held-out digits refused.
    cut = float(max(0.5, np.quantile(detector.junk_probability(mnist[0][8000:9000]), 0.99)))
    assert detector.junk_probability(digit[None])[0] <= cut
    sure = Predictor(trained_model, calibration=make_calibration(detector, answer_threshold=0.0,
                                                                 junk_threshold=cut))
    assert sure.predict(digit).verdict == READ
    unsure = Predictor(trained_model, calibration=make_calibration(detector, answer_threshold=1.0,
                                                                   junk_threshold=cut))
    prediction = unsure.predict(digit)
    assert prediction.verdict == NOT_SURE and not prediction.answered
    assert answers.headline(prediction).endswith("?") and " or " in answers.explanation(prediction)
    noise = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    refused = sure.predict(noise)
    assert refused.verdict == NOT_A_DIGIT and refused.junk_score > 0.5
    assert "does not look like a digit" in answers.explanation(refused)
    assert answers.cli_line(refused).startswith("not a digit")


def test_bad_calibrations_are_refused_with_a_reason(tmp_path: Path, trained_model) -> None:
    with pytest.raises(CalibrationError, match="temperature"):
        Calibration(temperature=float("nan"))
    with pytest.raises(CalibrationError, match="answer_threshold"):
        Calibration(answer_threshold=1.5)
    with pytest.raises(CalibrationError, match="version"):
        Calibration.from_dict({"version": 99})
    # A damaged calibration in a model file: the model is still read, uncalibrated, and says so.
    from tests.browser_helpers import write_promoted_model

    path = write_promoted_model(tmp_path, trained_model)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["calibration"] = {"version": 1, "temperature": "hot"}
    torch.save(checkpoint, path)
    predictor = Predictor.from_checkpoint(path)
    assert predictor.calibration is None and "calibration ignored" in predictor.calibration_note


def test_promotion_carries_the_runs_calibration(tmp_path: Path, detector: JunkDetector) -> None:
    run = make_run_dir(tmp_path / "run", val_acc=0.9)
    buffer = io.BytesIO()
    torch.save(make_calibration(detector).to_dict(), buffer)
    (run / RUN_FILE).write_bytes(buffer.getvalue())
    result = promote(Candidate.from_run_dir(run), tmp_path / "promoted")
    assert result.promoted
    predictor = Predictor.from_checkpoint(result.path)
    assert predictor.calibration is not None and predictor.calibration.detector is not None
    summary = json.loads((tmp_path / "promoted" / "model.json").read_text())["calibration"]
    assert summary["temperature"] == 2.0 and summary["junk_detector"] is True


def test_a_run_without_a_usable_calibration_promotes_uncalibrated(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", val_acc=0.9)
    (run / RUN_FILE).write_bytes(b"not a torch file")
    result = promote(Candidate.from_run_dir(run), tmp_path / "promoted")
    assert result.promoted and Predictor.from_checkpoint(result.path).calibration is None


def test_fit_and_score_on_held_out_digits(trained_model, mnist) -> None:
    images = np.round(mnist[0][8000:9000] * 255).astype(np.uint8)
    held_out = LabeledImages(images, mnist[1][8000:9000].astype(np.int64))
    fit = ConfidenceFit(target_precision=0.99, junk_count=300, detector_epochs=2)
    calibration = fit.fit(trained_model, trained_model.class_names, held_out, "a test")
    assert calibration.detector is not None and 0.5 <= calibration.junk_threshold <= 1.0
    # Temperature scaling minimises the log-loss, not ECE: on an already well calibrated
    # model ECE may move a little either way, but stays small.
    assert calibration.metrics["val_ece"] < 0.05
    test = LabeledImages(np.round(mnist[0][9000:9500] * 255).astype(np.uint8),
                         mnist[1][9000:9500].astype(np.int64))
    measured = score(trained_model, calibration, test)
    assert set(measured) >= {"ece", "answered", "answered_acc", "digits_refused"}
    assert measured["answered_acc"] >= measured["accuracy"]  # not sure removes errors first


def test_the_settings_are_checked_where_they_live() -> None:
    with pytest.raises(ValueError, match="target_precision"):
        ConfidenceFit(target_precision=1.0)
    with pytest.raises(ValueError, match="digit_refusal"):
        ConfidenceFit(digit_refusal=0.0)
    with pytest.raises(ValueError, match="junk_count"):
        ConfidenceFit(junk_count=10)


def test_the_least_sure_character_of_a_number_is_marked() -> None:
    from handwriting.answers import character_caption
    from handwriting.reading import CharacterReading

    confidences = [0.99, 0.62, 0.97]
    assert answers.weakest_index(confidences) == 1 and answers.weakest_index([]) is None
    # Above the model's threshold: only the weakest is marked; below it: "not sure".
    assert answers.character_note(0.62, True, 0.5) == "least sure"
    assert answers.character_note(0.99, False, 0.5) == ""
    assert answers.character_note(0.62, True, 0.9) == "not sure"
    assert answers.character_note(0.62, True, None) == "least sure"
    probabilities = np.zeros(10)
    probabilities[[4, 9]] = [0.62, 0.30]
    char = CharacterReading("4", 0.62, (0, 0, 1, 1), np.zeros((28, 28)), probabilities, list("0123456789"))
    assert character_caption(char, "not sure") == "4 or 9? · 62 % · not sure"
    assert character_caption(char, "least sure") == "4 · 62 % · least sure"
    assert character_caption(char) == "4 · 62 %"
