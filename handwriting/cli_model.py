"""`handwriting calibrate`, `info`, `export` and `serve`: what is done with a trained
model besides reading files. Parsed in ``handwriting.cli``; each command returns its exit
status."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from handwriting.cli_read import model_file


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit a model's calibration on the validation writers' drawings and store it in the
    model file (a promoted model is rewritten like a promotion: the old file kept)."""
    from handwriting.atomic import write_atomic
    from handwriting.checkpoints import torch_bytes
    from handwriting.confidence import ConfidenceFit, score
    from handwriting.data.download import DownloadError
    from handwriting.data.pen_source import PenDigits
    from handwriting.inference import CALIBRATION_KEY, model_from_checkpoint, read_checkpoint
    from handwriting.promoted_dir import MODEL_FILE
    from handwriting.promotion import recalibrate
    from handwriting.runs import SELECTION_METRIC

    path = model_file(args.model)
    checkpoint = read_checkpoint(path)
    model = model_from_checkpoint(checkpoint, str(path))
    source = PenDigits(cache_dir=args.cache_dir, download=False, unipen_file=args.unipen_file)
    try:
        data = source.load()
    except (DownloadError, OSError) as exc:
        first = str(exc).splitlines()[0]
        print(f"error: no real drawings to calibrate on ({first}). `handwriting download "
              "pendigits` fetches them (or pass --unipen-file).", file=sys.stderr)
        return 2
    if list(model.class_names) != list(data.classes):
        print(f"error: calibrate needs a digits model; {path} reads {model.class_names}", file=sys.stderr)
        return 2
    calibration = ConfidenceFit(target_precision=args.target_precision).fit(
        model, model.class_names, data.val, "the validation writers' real drawings (pen digits)",
        data.val_writers, data.train)
    measured = score(model, calibration, data.test)
    promoted = SELECTION_METRIC in (checkpoint.get("handwriting") or {}).get("metrics", {})
    if path.name == MODEL_FILE and promoted:
        recalibrate(path.parent, calibration)
    else:
        checkpoint[CALIBRATION_KEY] = calibration.to_dict()
        write_atomic(path, torch_bytes(checkpoint))
    print(f"Calibrated {path}: temperature {calibration.temperature:.3f}, not sure below "
          f"{calibration.answer_threshold:.1%}, junk threshold {calibration.junk_threshold:.3f}")
    print(f"On the test writers' drawings: calibration error {measured['ece_uncalibrated']:.2%} -> "
          f"{measured['ece']:.2%}; {measured['answered']:.1%} answered, {measured['answered_acc']:.2%} "
          f"of those right; {measured['digits_refused']:.1%} refused as not a digit")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print the promoted model's metadata, but only for a model that loads: metadata read
    from a file whose weights the app would refuse must not look like a healthy model."""
    from handwriting.inference import ModelLoadError, ModelNotFoundError, model_from_checkpoint
    from handwriting.promoted_dir import MODEL_FILE, read_promoted
    from handwriting.runs import SELECTION_METRIC

    given = Path(args.model)
    path = given if given.is_file() else given / MODEL_FILE
    try:
        if path.name != MODEL_FILE:
            raise ModelLoadError(f"{path} is not a promoted model (that is a {MODEL_FILE} "
                                 "in a promoted folder); give the folder or its model file")
        promoted = read_promoted(path.parent)
        if SELECTION_METRIC not in promoted.metadata.get("metrics", {}):
            raise ModelLoadError(f"{path} has no promotion metadata")
        model_from_checkpoint(promoted.checkpoint, str(path))
    except ModelNotFoundError:
        print(f"No promoted model in {args.model}. Train one: python train.py")
        return 1
    except (ModelLoadError, OSError, ValueError, TypeError) as exc:
        print(f"error: the model in {args.model} cannot be loaded: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in promoted.metadata.items() if k != "config"}, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """ONNX + TorchScript + contract.json, for runtimes without this package (export.py)."""
    from handwriting.export import export_model

    result = export_model(model_file(args.model), args.out, tuple(args.format))
    for name, path in result.files.items():
        print(f"{name}: {path}")
    calibration = result.contract.get("calibration")
    print(f"classes: {' '.join(result.contract['classes'])}; calibration: "
          f"{'temperature ' + str(calibration.get('temperature')) if calibration else 'none'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Read digits over HTTP (http_api.py); loopback unless --host says otherwise."""
    from handwriting.http_api import serve

    serve(model_file(args.model), host=args.host, port=args.port, threads=args.threads)
    return 0
