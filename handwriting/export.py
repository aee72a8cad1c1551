"""Export a trained model for places without this package: ONNX and TorchScript files plus
a small JSON contract that says what to feed them.

A model file alone is not enough to use it correctly: the network expects MNIST-like
28x28 images, white ink on black, in [0, 1], centred by centre of mass, and its outputs are
indices into a class list. Those facts live in this package's preprocessing and metadata,
so they are written next to the exported files (``contract.json``), together with the
model's calibration when it has one (the temperature to divide the logits by), so a C++,
JavaScript or mobile consumer can reproduce what ``Predictor`` does.

The exported graph is the network alone plus a softmax: it takes the prepared 28x28
images, not raw pictures; the contract describes the preprocessing to apply first.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from handwriting.inference import Predictor

ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.torchscript.pt"
CONTRACT_FILE = "contract.json"
CONTRACT_VERSION = 1
ONNX_OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAMES = ("logits", "probabilities")
FORMATS = ("onnx", "torchscript")
# Dynamic batch dimension: any batch from 1 image up.
MAX_BATCH = 65536

PREPROCESSING = (
    "Grayscale; white ink on a black background (invert dark-on-light pictures); crop to "
    "the ink; scale to fit 20x20 keeping the aspect ratio; paste into 28x28 centred by the "
    "ink's centre of mass (as MNIST was made); values in [0, 1] as float32. Reference "
    "implementation: handwriting.preprocessing.prepare_image."
)


class ExportError(RuntimeError):
    """The model could not be exported (or the export does not match the model)."""


class ExportedNetwork(nn.Module):
    """What the exported files compute: (N, 28, 28) images -> (logits, probabilities).

    Probabilities are the plain softmax of the logits (not calibrated); the contract's
    ``calibration.temperature``, when present, is applied as softmax(logits / T)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(image.reshape(image.shape[0], -1))
        return logits, torch.softmax(logits, dim=-1)


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    files: dict[str, Path]
    contract: dict[str, Any]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_onnx(network: ExportedNetwork, example: torch.Tensor, path: Path) -> None:
    """torch's current (torch.export-based) ONNX exporter, batch dimension dynamic, weights
    inside the one file (no external data file to lose)."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    # The exporter prints its progress to stdout and logs that torchvision's operators are
    # unavailable (this model has none); the CLI prints its own summary instead.
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                network, (example,), dynamo=True, input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES), dynamic_shapes=({0: batch},),
                opset_version=ONNX_OPSET, external_data=False, verbose=False,
            )
    finally:
        onnx_log.setLevel(level)
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)
    import onnx

    onnx.checker.check_model(str(path), full_check=True)


def export_torchscript(network: ExportedNetwork, path: Path) -> None:
    """TorchScript, for C++ (libtorch) and Android/iOS PyTorch runtimes. torch marks
    torch.jit as deprecated but still ships it; scripting (not tracing) keeps the batch
    dimension free."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(network)
        torch.jit.save(scripted, str(path))


def model_calibration(predictor: Predictor) -> dict[str, Any] | None:
    """The model's calibration as plain values (``None``: never calibrated): as its
    metadata has it, else the loaded calibration's summary. Only the numbers travel: a
    junk detector, when the model has one, is not part of the export, so exported models
    can say "not sure" (``answer_threshold``) but not "not a digit"."""
    stored = (predictor.metadata or {}).get("calibration")
    if stored is None:
        loaded = getattr(predictor, "calibration", None)
        stored = loaded.summary() if hasattr(loaded, "summary") else None
    if stored is None:
        return None
    # Anything JSON cannot hold (tensors of a stored detector) is left out, not failed on.
    return json.loads(json.dumps(stored, default=lambda value: None))


def build_contract(predictor: Predictor, files: dict[str, Path], source: Path) -> dict[str, Any]:
    """The JSON written beside the files: inputs, outputs, classes, calibration, origin."""
    classes = list(predictor.classes)
    meta = predictor.metadata or {}
    metrics = {k: v for k, v in (meta.get("metrics") or {}).items()
               if k in ("val/acc", "test/acc", "drawn/acc") and v is not None}
    return {
        "format_version": CONTRACT_VERSION,
        "files": {fmt: {"path": p.name, "sha256": _sha256(p)} for fmt, p in files.items()},
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", 28, 28],
            "dtype": "float32",
            "range": [0.0, 1.0],
            "polarity": "white ink on black: ink 1.0, background 0.0",
            "preprocessing": PREPROCESSING,
        },
        "outputs": {
            "logits": {"shape": ["batch", len(classes)], "dtype": "float32"},
            "probabilities": {
                "shape": ["batch", len(classes)], "dtype": "float32",
                "meaning": "softmax(logits), uncalibrated; with a calibration, use "
                           "softmax(logits / calibration.temperature)",
            },
        },
        "classes": classes,
        "calibration": model_calibration(predictor),
        "model": {
            "architecture": "MLP",
            "hidden_sizes": [int(h) for h in predictor.model.hparams.get("hidden_sizes", [])],
            "source": str(source),
            "source_sha256": _sha256(source),
            "metrics": metrics,
            "promoted_at": meta.get("promoted_at"),
        },
        "exported_with": {"torch": torch.__version__, "onnx_opset": ONNX_OPSET,
                          "python": platform.python_version()},
    }


def _check_torchscript(network: ExportedNetwork, path: Path, images: torch.Tensor) -> None:
    """Reload the TorchScript file and compare it with the model: a broken export fails
    here, not in someone's app."""
    loaded = torch.jit.load(str(path))
    with torch.inference_mode():
        expected, got = network(images)[1], loaded(images)[1]
    diff = float((expected - got).abs().max())
    if diff > 1e-5:
        raise ExportError(f"TorchScript export differs from the model (max |dp| = {diff:.2e})")


def export_model(
    model_path: str | Path, out_dir: str | Path, formats: tuple[str, ...] = FORMATS
) -> ExportResult:
    """Export the checkpoint at ``model_path`` (loaded safely, ``weights_only``) into
    ``out_dir``: the chosen formats and ``contract.json``. Raises ModelLoadError for a bad
    checkpoint, ExportError when exporting fails."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"formats must be some of {FORMATS}, got {list(formats)}")
    model_path = Path(model_path)
    predictor = Predictor.from_checkpoint(model_path)
    network = ExportedNetwork(predictor.model.net).eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Seeded example batch: shapes only, but the check below compares real outputs on it.
    example = torch.as_tensor(np.random.default_rng(0).random((2, 28, 28), dtype=np.float32))
    files: dict[str, Path] = {}
    try:
        if "onnx" in formats:
            files["onnx"] = out / ONNX_FILE
            export_onnx(network, example, files["onnx"])
        if "torchscript" in formats:
            files["torchscript"] = out / TORCHSCRIPT_FILE
            export_torchscript(network, files["torchscript"])
            _check_torchscript(network, files["torchscript"], example)
    except ExportError:
        raise
    except Exception as exc:  # exporters raise many types; all mean "this export failed"
        raise ExportError(f"exporting {model_path} failed ({type(exc).__name__}: {exc})") from exc
    contract = build_contract(predictor, files, model_path)
    (out / CONTRACT_FILE).write_text(json.dumps(contract, indent=2) + "\n")
    return ExportResult(out, files | {"contract": out / CONTRACT_FILE}, contract)
