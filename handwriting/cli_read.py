"""`handwriting predict`, `read-number`, `evaluate` and `drawn`: what a model reads from
files, and how well it reads a data set or real drawings by held-out writers. Parsed in
``handwriting.cli``; each command returns its exit status."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from handwriting.inference import Predictor


def cmd_predict(args: argparse.Namespace) -> int:
    from handwriting import serving
    from handwriting.answers import character_noun, cli_line
    from handwriting.grey_image import ImageError
    from handwriting.preprocessing import EmptyImageError

    predictor = load_predictor(args.model)
    images, status = image_files(args.images)
    for image in images:
        try:
            prediction = serving.read(predictor, image).prediction
        except (ImageError, EmptyImageError, FileNotFoundError) as exc:
            print(f"{image}: error: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{image}: {cli_line(prediction, character_noun(predictor.classes))}")
    return status


def image_files(arguments: list[str]) -> tuple[list[Path], int]:
    """The files to read: each argument, with a folder standing for the images directly in
    it (sorted), as a user pointing at a folder of drawings means. A folder without images
    is reported (status 1) instead of being passed on to fail as "no such file"."""
    from handwriting.data.folder import EXTENSIONS

    files: list[Path] = []
    status = 0
    for argument in arguments:
        path = Path(argument)
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
        if not found:
            print(f"{path}: error: it is a folder with no images in it (looked for "
                  f"{', '.join(EXTENSIONS)} files directly inside)", file=sys.stderr)
            status = 1
        files.extend(found)
    return files, status


def load_predictor(model: str) -> Predictor:
    from handwriting.inference import Predictor

    return Predictor.from_checkpoint(model_file(model))


def cmd_read_number(args: argparse.Namespace) -> int:
    from handwriting import serving
    from handwriting.answers import character_note, weakest_index
    from handwriting.grey_image import ImageError
    from handwriting.preprocessing import EmptyImageError
    from handwriting.stroke_format import StrokeFormatError, load_strokes

    if not args.images and not args.strokes:
        print("error: give image files and/or --strokes FILE.json", file=sys.stderr)
        return 2
    predictor = load_predictor(args.model)
    images, status = image_files(args.images)
    # Stroke files (handwriting/stroke_format.py) are read by their strokes, images by pixels.
    inputs = [(image, False) for image in images] + [(Path(f), True) for f in args.strokes]
    for image, is_strokes in inputs:
        try:
            source = load_strokes(image) if is_strokes else image
            reading = serving.read(predictor, source, number=True).number
        except (ImageError, EmptyImageError, FileNotFoundError, StrokeFormatError) as exc:
            print(f"{image}: error: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{image}: {reading.text}  (confidence {reading.confidence:.1%}, "
              f"least sure character {reading.min_confidence:.1%})")
        threshold = predictor.calibration.answer_threshold if predictor.calibration else None
        confidences = [c.confidence for c in reading.characters]
        weakest = weakest_index(confidences)
        print("  " + "  ".join(
            f"{c.label} {c.confidence:.1%}"
            + (f" [{note}]" if (note := character_note(c.confidence, i == weakest, threshold)) else "")
            for i, c in enumerate(reading.characters)))
    return status


def model_file(model: str) -> Path:
    return Path(model) / "model.ckpt" if Path(model).is_dir() else Path(model)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from handwriting.evaluate import evaluate_checkpoint, evaluate_folder, format_evaluation

    model = model_file(args.model)
    if args.data == "folder":
        if args.root is None:
            raise ValueError("--data folder needs --root DIR (e.g. data/drawings, where the "
                             "app saves labelled drawings)")
        evaluation, classes = evaluate_folder(model, args.root)
        print(format_evaluation(evaluation, classes, f"{model} on {args.root}"))
        return 0
    evaluation, classes = evaluate_checkpoint(model, args.data, args.cache_dir)
    print(format_evaluation(evaluation, classes, f"{model} on {args.data} test"))
    return 0


def cmd_drawn(args: argparse.Namespace) -> int:
    """Score a model on the held-out writers' real drawings (drawn.py)."""
    from handwriting.data.pen_source import PenDigits
    from handwriting.drawn import DrawnEvaluation
    from handwriting.inference import Predictor

    predictor = Predictor.from_checkpoint(model_file(args.model))
    trained = ((predictor.metadata.get("config") or {}).get("pendigits") or {})
    evaluation = DrawnEvaluation(PenDigits(cache_dir=args.cache_dir, download=False,
                                           unipen_file=args.unipen_file))
    held = {"val_writers": 4, "test_writers": 6, "split_seed": 0}
    if trained and any(trained.get(k, v) != v for k, v in held.items()):
        print(f"warning: the model was trained with pendigits {trained}; the held-out writers "
              "scored here may not be held out for it", file=sys.stderr)
    metrics = evaluation.score(predictor.model, predictor.classes, train_pool=None)
    if not metrics:
        print(f"error: {evaluation.unavailable}", file=sys.stderr)
        return 2
    return 0
