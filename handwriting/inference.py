"""Load a trained model safely and read images with it.

Checkpoints are opened with ``torch.load(weights_only=True)``: a checkpoint file can
hold arbitrary pickled code, and models get shared and uploaded, so we only ever
unpickle tensors and plain containers. This is the path the app, the CLI and the
benchmarks use.
"""

from __future__ import annotations

import inspect
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handwriting.calibration import READ, Calibration, CalibrationError, Verdict
from handwriting.model import MLPClassifier


class ModelLoadError(RuntimeError):
    """The checkpoint exists but cannot be used (corrupt, foreign, or incompatible)."""


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """No checkpoint where one was expected."""


# Top-level checkpoint key of the model's Calibration (calibration.py), beside "state_dict".
CALIBRATION_KEY = "calibration"
TRAIN_HINT = "Train and promote one with: python train.py   (or: handwriting promote <run dir>)"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's dict, unpickled with ``weights_only=True``; clear errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"No model file at {path}. {TRAIN_HINT}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files: all mean "unusable"
        # torch's own message suggests weights_only=False: never do that for a file we did
        # not write, so only the kind of failure is passed on.
        raise ModelLoadError(
            f"{path} is not a readable, safe checkpoint ({_why_unreadable(exc)}). Replace it "
            f"by promoting a run again (handwriting promote <run dir> --force) or retrain with python train.py."
        ) from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ModelLoadError(f"{path} holds no 'state_dict': not a handwriting/Lightning checkpoint")
    if "hyper_parameters" not in checkpoint:
        raise ModelLoadError(f"{path} has no 'hyper_parameters': cannot rebuild the model")
    return checkpoint


def _why_unreadable(exc: Exception) -> str:
    """The true reason torch.load(weights_only=True) failed, in words. The safe loader's
    refusals are UnpicklingErrors saying "Weights only load failed" (the forbidden global
    is spelled "Unsupported global: GLOBAL x" or "unsupported GLOBAL x", depending on why)."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "weights only load failed" in text.lower():
        found = re.search(r"GLOBAL ([\w.]+)", text)
        named = f": {found.group(1)}" if found else ""
        return (f"it holds code or objects other than tensors and plain values{named}, "
                "which are never loaded")
    return "not a checkpoint file, or truncated"


def _check_shapes(hparams: dict[str, Any], state_dict: Any, source: str) -> None:
    """Compare the weights' shapes with the model the hyperparameters describe *before*
    building it: a crafted file could otherwise make us allocate any amount of memory
    (``hidden_sizes=[300000]`` beside small weights). The model is laid out on the meta
    device, which allocates nothing."""
    if not isinstance(state_dict, dict):
        raise ModelLoadError(f"{source}: 'state_dict' is not a table of tensors")
    layers = sum(1 for v in state_dict.values() if isinstance(v, torch.Tensor) and v.ndim == 2)
    default = inspect.signature(MLPClassifier.__init__).parameters["hidden_sizes"].default
    hidden = hparams.get("hidden_sizes", default)
    if not isinstance(hidden, (list, tuple)) or len(hidden) + 1 != layers:
        raise ModelLoadError(f"{source} does not match the MLP it describes: hidden_sizes "
                             f"{hidden!r} but the file holds {layers} weight matrices")
    try:
        with torch.device("meta"):
            expected = MLPClassifier(**hparams).state_dict()
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"{source} has unusable hyper_parameters: {exc}") from exc
    for name, tensor in expected.items():
        found = state_dict.get(name)
        shape = tuple(found.shape) if isinstance(found, torch.Tensor) else None
        if shape != tuple(tensor.shape):
            raise ModelLoadError(
                f"{source} does not match the MLP it describes: {name} should be "
                f"{tuple(tensor.shape)} for hyper_parameters {hidden!r}, the file holds {shape}. "
                "The file is corrupt or was not written by this project.")


def model_from_checkpoint(checkpoint: dict[str, Any], source: str = "checkpoint") -> MLPClassifier:
    """Rebuild an :class:`MLPClassifier` from a checkpoint dict (no Hydra, no pickled
    objects), checking its shapes before anything is allocated."""
    accepted = set(inspect.signature(MLPClassifier.__init__).parameters) - {"self"}
    hparams = {k: v for k, v in dict(checkpoint["hyper_parameters"]).items() if k in accepted}
    _check_shapes(hparams, checkpoint["state_dict"], source)
    try:
        model = MLPClassifier(**hparams)
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"{source} does not match the MLP it describes: {exc}") from exc
    return model.eval()


@dataclass(frozen=True)
class Prediction:
    """What the model read: best class, its probability, and all probabilities.

    ``verdict`` (calibration.py): ``read`` (answer it), ``not_sure`` (below the model's
    answer threshold: show the best guesses, not an answer) or ``not_a_digit`` (the junk
    detector refused the input). Without a calibration every reading is ``read``.
    ``junk_score``: the detector's probability that the input is not a character."""

    label: str
    index: int
    confidence: float
    probabilities: np.ndarray
    classes: list[str]
    image: np.ndarray = field(repr=False)
    verdict: str = READ
    junk_score: float | None = None

    def top_k(self, k: int = 3) -> list[tuple[str, float]]:
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [(self.classes[i], float(self.probabilities[i])) for i in order]

    @property
    def answered(self) -> bool:
        return self.verdict == READ


class Predictor:
    """A loaded model, the metadata it was promoted with, and its calibration (when it
    has one: ``calibration_note`` says why not, for the app to show)."""

    def __init__(self, model: MLPClassifier, metadata: dict[str, Any] | None = None,
                 calibration: Calibration | None = None, calibration_note: str = "") -> None:
        self.model = model.eval()
        self.metadata = metadata or {}
        self.classes = model.class_names
        self.calibration = calibration
        self.calibration_note = calibration_note or (
            "" if calibration else "not calibrated: confidences are the raw softmax")

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> Predictor:
        checkpoint = read_checkpoint(path)
        model = model_from_checkpoint(checkpoint, source=str(path))
        calibration, note = None, ""
        if checkpoint.get(CALIBRATION_KEY) is not None:
            try:
                calibration = Calibration.from_dict(checkpoint[CALIBRATION_KEY])
            except CalibrationError as exc:  # the model itself is fine: read, uncalibrated
                note = f"calibration ignored: {exc}"
        return cls(model, dict(checkpoint.get("handwriting", {})), calibration, note)

    @property
    def temperature(self) -> float:
        return self.calibration.temperature if self.calibration else 1.0

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) or (N, 784) floats in [0, 1] -> (N, classes) probabilities,
        calibrated when the model has a calibration (every confidence shown is)."""
        x = torch.as_tensor(np.asarray(images, dtype=np.float32)).reshape(len(images), -1)
        return torch.softmax(self.model(x) / self.temperature, dim=-1).numpy()

    def predict(self, image28: np.ndarray) -> Prediction:
        """Read one prepared 28x28 image (white ink on black, [0, 1])."""
        image28 = np.asarray(image28, dtype=np.float32).reshape(28, 28)
        probs = self.probabilities(image28[None])[0]
        index = int(probs.argmax())
        verdict = (self.calibration.verdict(float(probs[index]), image28) if self.calibration
                   else Verdict(READ))
        return Prediction(self.classes[index], index, float(probs[index]), probs, self.classes,
                          image28, verdict.kind, verdict.junk_score)

    def predict_image(self, image: Any) -> Prediction:
        """Any image (path, bytes, PIL, array; any size, mode, polarity) through the shared
        preprocessing, then :meth:`predict`."""
        from handwriting.grey_image import load_image
        from handwriting.preprocessing import prepare_image

        if isinstance(image, (str, Path, bytes)):
            image = load_image(image)
        return self.predict(prepare_image(image))

    def predict_canvas(self, rgba: np.ndarray) -> Prediction:
        """A drawing canvas's RGBA array -> prediction (raises EmptyImageError when blank)."""
        from handwriting.preprocessing import prepare_canvas

        return self.predict(prepare_canvas(rgba))
