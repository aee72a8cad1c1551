"""Load a trained model safely and read images with it.

Checkpoints are opened with ``torch.load(weights_only=True)``: a checkpoint file can
hold arbitrary pickled code, and models get shared and uploaded, so we only ever
unpickle tensors and plain containers. This is the path the app, the CLI and the
benchmarks use.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handwriting.model import MLPClassifier


class ModelLoadError(RuntimeError):
    """The checkpoint exists but cannot be used (corrupt, foreign, or incompatible)."""


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """No checkpoint where one was expected."""


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
        unsafe = "Unsupported global" in str(exc) or "Unsupported class" in str(exc)
        kind = ("it holds objects other than tensors and plain values" if unsafe
                else "not a checkpoint file, or truncated")
        raise ModelLoadError(
            f"{path} is not a readable, safe checkpoint ({kind}). Replace it by promoting a "
            f"run again (handwriting promote <run dir> --force) or retrain with python train.py."
        ) from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ModelLoadError(f"{path} holds no 'state_dict': not a handwriting/Lightning checkpoint")
    if "hyper_parameters" not in checkpoint:
        raise ModelLoadError(f"{path} has no 'hyper_parameters': cannot rebuild the model")
    return checkpoint


def model_from_checkpoint(checkpoint: dict[str, Any], source: str = "checkpoint") -> MLPClassifier:
    """Rebuild an :class:`MLPClassifier` from a checkpoint dict (no Hydra, no pickled objects)."""
    accepted = set(inspect.signature(MLPClassifier.__init__).parameters) - {"self"}
    hparams = {k: v for k, v in dict(checkpoint["hyper_parameters"]).items() if k in accepted}
    try:
        model = MLPClassifier(**hparams)
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"{source} does not match the MLP it describes: {exc}") from exc
    return model.eval()


@dataclass(frozen=True)
class Prediction:
    """What the model read: best class, its probability, and all probabilities."""

    label: str
    index: int
    confidence: float
    probabilities: np.ndarray
    classes: list[str]
    image: np.ndarray = field(repr=False)

    def top_k(self, k: int = 3) -> list[tuple[str, float]]:
        order = np.argsort(-self.probabilities)[:k]
        return [(self.classes[i], float(self.probabilities[i])) for i in order]


class Predictor:
    """A loaded model plus the metadata it was promoted with."""

    def __init__(self, model: MLPClassifier, metadata: dict[str, Any] | None = None) -> None:
        self.model = model.eval()
        self.metadata = metadata or {}
        self.classes = model.class_names

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> Predictor:
        checkpoint = read_checkpoint(path)
        model = model_from_checkpoint(checkpoint, source=str(path))
        return cls(model, dict(checkpoint.get("handwriting", {})))

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) or (N, 784) floats in [0, 1] -> (N, classes) probabilities."""
        x = torch.as_tensor(np.asarray(images, dtype=np.float32)).reshape(len(images), -1)
        return torch.softmax(self.model(x), dim=-1).numpy()

    def predict(self, image28: np.ndarray) -> Prediction:
        """Read one prepared 28x28 image (white ink on black, [0, 1])."""
        image28 = np.asarray(image28, dtype=np.float32).reshape(28, 28)
        probs = self.probabilities(image28[None])[0]
        index = int(probs.argmax())
        return Prediction(self.classes[index], index, float(probs[index]), probs, self.classes, image28)

    def predict_image(self, image: Any) -> Prediction:
        """Any image (path, bytes, PIL, array; any size, mode, polarity) through the shared
        preprocessing, then :meth:`predict`."""
        from handwriting.preprocessing import load_image, prepare_image

        if isinstance(image, (str, Path, bytes)):
            image = load_image(image)
        return self.predict(prepare_image(image))

    def predict_canvas(self, rgba: np.ndarray) -> Prediction:
        """A drawing canvas's RGBA array -> prediction (raises EmptyImageError when blank)."""
        from handwriting.preprocessing import prepare_canvas

        return self.predict(prepare_canvas(rgba))
