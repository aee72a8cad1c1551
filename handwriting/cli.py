"""`handwriting` command line: promote runs, summarize sweeps, read image files.

    handwriting promote outputs/sweeps/2026-11-26_12-00-00 [--force]
    handwriting summarize outputs/sweeps/2026-11-26_12-00-00
    handwriting predict digit.png other.jpg
    handwriting read-number house_number.png
    handwriting evaluate --data mnist
    handwriting evaluate --data folder --root data/drawings
    handwriting info
    handwriting export --out models/exported
    handwriting serve --port 8000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from handwriting.inference import Predictor


def default_model_dir() -> Path:
    """Where the app loads from (see ``promotion.default_promoted_dir``)."""
    from handwriting.promotion import default_promoted_dir

    return default_promoted_dir()


def _cmd_promote(args: argparse.Namespace) -> int:
    from handwriting.promotion import best_run, find_runs, promote, ranks_by_drawn

    candidates = find_runs(args.directory)
    best = best_run(candidates)
    by_drawn = ranks_by_drawn(candidates)
    metric, score = ("drawn/val_acc", best.drawn_score) if by_drawn else ("val/acc", best.score)
    print(f"{len(candidates)} finished run(s); best by {metric}: {best.run_dir} ({score:.4f})")
    result = promote(best, args.to, force=args.force)
    print(f"{'Promoted' if result.promoted else 'Not promoted'} -> {result.path}: {result.reason}")
    return 0


def _cmd_summarize(args: argparse.Namespace) -> int:
    from handwriting.sweep import summarize

    summarize(Path(args.directory), promote_to=None if args.no_promote else args.to, force=args.force)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from handwriting.answers import character_noun, cli_line
    from handwriting.preprocessing import EmptyImageError, ImageError

    predictor = _load_predictor(args.model)
    images, status = _image_files(args.images)
    for image in images:
        try:
            prediction = predictor.predict_image(image)
        except (ImageError, EmptyImageError, FileNotFoundError) as exc:
            print(f"{image}: error: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{image}: {cli_line(prediction, character_noun(predictor.classes))}")
    return status


def _image_files(arguments: list[str]) -> tuple[list[Path], int]:
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


def _load_predictor(model: str) -> Predictor:
    from handwriting.inference import Predictor

    return Predictor.from_checkpoint(_model_file(model))


def _cmd_read_number(args: argparse.Namespace) -> int:
    from handwriting.answers import character_note, weakest_index
    from handwriting.preprocessing import EmptyImageError, ImageError
    from handwriting.reading import read_number
    from handwriting.stroke_format import StrokeFormatError, load_strokes
    from handwriting.stroke_reading import read_strokes

    if not args.images and not args.strokes:
        print("error: give image files and/or --strokes FILE.json", file=sys.stderr)
        return 2
    predictor = _load_predictor(args.model)
    images, status = _image_files(args.images)
    # Stroke files (handwriting/stroke_format.py) are read by their strokes, images by pixels.
    inputs = [(image, False) for image in images] + [(Path(f), True) for f in args.strokes]
    for image, is_strokes in inputs:
        try:
            reading = (read_strokes(load_strokes(image), predictor) if is_strokes
                       else read_number(image, predictor))
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


def _model_file(model: str) -> Path:
    return Path(model) / "model.ckpt" if Path(model).is_dir() else Path(model)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from handwriting.evaluate import evaluate_checkpoint, evaluate_folder, format_evaluation

    model = _model_file(args.model)
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


def _cmd_download(args: argparse.Namespace) -> int:
    """Fetch a data set into the cache once (e.g. before going offline)."""
    if args.dataset == "pendigits":
        from handwriting.data.pendigits import LICENSE_NOTE, ensure_pendigits

        paths = ensure_pendigits(args.cache_dir, include_test_file=args.official_test)
        print(LICENSE_NOTE)
    else:
        from handwriting.data.mnist import MNIST

        source = MNIST(args.cache_dir)
        source.load()
        paths = {"mnist": source.cache_dir}
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _cmd_drawn(args: argparse.Namespace) -> int:
    """Score a model on the held-out writers' real drawings (drawn.py)."""
    from handwriting.data.pen_source import PenDigits
    from handwriting.drawn import DrawnEvaluation
    from handwriting.inference import Predictor

    predictor = Predictor.from_checkpoint(_model_file(args.model))
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


def _cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit a model's calibration on the validation writers' drawings and store it in the
    model file (a promoted model is rewritten like a promotion: the old file kept)."""
    from handwriting.atomic import write_atomic
    from handwriting.checkpoints import torch_bytes
    from handwriting.confidence import ConfidenceFit, score
    from handwriting.data.download import DownloadError
    from handwriting.data.pen_source import PenDigits
    from handwriting.inference import CALIBRATION_KEY, model_from_checkpoint, read_checkpoint
    from handwriting.promotion import MODEL_FILE, SELECTION_METRIC, recalibrate

    path = _model_file(args.model)
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


def _cmd_info(args: argparse.Namespace) -> int:
    """Print the promoted model's metadata, but only for a model that loads: metadata read
    from a file whose weights the app would refuse must not look like a healthy model."""
    from handwriting.inference import ModelLoadError, ModelNotFoundError, model_from_checkpoint
    from handwriting.promotion import MODEL_FILE, SELECTION_METRIC, read_promoted

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


def _cmd_export(args: argparse.Namespace) -> int:
    """ONNX + TorchScript + contract.json, for runtimes without this package (export.py)."""
    from handwriting.export import export_model

    result = export_model(_model_file(args.model), args.out, tuple(args.format))
    for name, path in result.files.items():
        print(f"{name}: {path}")
    calibration = result.contract.get("calibration")
    print(f"classes: {' '.join(result.contract['classes'])}; calibration: "
          f"{'temperature ' + str(calibration.get('temperature')) if calibration else 'none'}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    """Read digits over HTTP (http_api.py); loopback unless --host says otherwise."""
    from handwriting.http_api import serve

    serve(_model_file(args.model), host=args.host, port=args.port, threads=args.threads)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="handwriting", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    model_dir = str(default_model_dir())

    p = sub.add_parser("promote", help="promote the best run (by drawn/val_acc when all runs have it, else val/acc) under a run or sweep dir")
    p.add_argument("directory", help="a run dir or a sweep dir containing run.json files")
    p.add_argument("--to", default=model_dir, help=f"promoted model dir (default {model_dir})")
    p.add_argument("--force", action="store_true", help="promote even if not better / other data")
    p.set_defaults(func=_cmd_promote)

    p = sub.add_parser("summarize", help="ranked table + plot of a sweep, then promote its best run")
    p.add_argument("directory")
    p.add_argument("--to", default=model_dir)
    p.add_argument("--force", action="store_true")
    p.add_argument("--no-promote", action="store_true")
    p.set_defaults(func=_cmd_summarize)

    p = sub.add_parser("predict", help="read handwritten characters from image files")
    p.add_argument("images", nargs="+")
    p.add_argument("--model", default=model_dir, help="model.ckpt or a promoted dir")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser(
        "read-number",
        help="read a whole number (or a row of characters) from image files",
        description="Segment each image into characters (one line, left to right), read each "
        "with the model and print the string, each character's confidence and the overall "
        "confidence (the product of the characters').",
    )
    p.add_argument("images", nargs="*", metavar="IMAGE")
    p.add_argument("--strokes", action="append", default=[], metavar="FILE.json",
                   help='read the strokes in a JSON file ({"strokes": [[[x, y], ...], ...], '
                   '"width": W, "height": H, "stroke_width": P}; see handwriting/stroke_format.py), '
                   "grouped into characters by drawing order; repeatable")
    p.add_argument("--model", default=model_dir, help="model.ckpt or a promoted dir")
    p.set_defaults(func=_cmd_read_number)

    p = sub.add_parser("evaluate", help="accuracy of a model on a source's test split")
    p.add_argument("--data", choices=["embedded", "mnist", "folder"], default="mnist",
                   help="mnist: the official 10k test set (default); embedded: its 1000-image "
                        "split; folder: every image under --root (<split>/<class>/ or <class>/)")
    p.add_argument("--root", default=None,
                   help="image folder for --data folder, e.g. data/drawings (saved from the app)")
    p.add_argument("--cache-dir", default=None, help="MNIST cache dir (default: the data cache)")
    p.add_argument("--model", default=model_dir, help="model.ckpt or a promoted dir")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("download", help="fetch a data set into the cache (checksummed)")
    p.add_argument("dataset", choices=["pendigits", "mnist"])
    p.add_argument("--cache-dir", default=None, help="default: $HANDWRITING_DATA_DIR/<dataset>")
    p.add_argument("--official-test", action="store_true",
                   help="pendigits: also UCI's writer-independent test file (14 more writers)")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("drawn", help="accuracy on real drawings by held-out writers (pen digits)")
    p.add_argument("--model", default=model_dir, help="model.ckpt or a promoted dir")
    p.add_argument("--cache-dir", default=None, help="pen-digit cache (default: the data cache)")
    p.add_argument("--unipen-file", default=None, help="your own UNIPEN file instead of UCI's")
    p.set_defaults(func=_cmd_drawn)

    p = sub.add_parser("calibrate", help="fit a model's confidence, 'not sure' and 'not a digit' "
                       "on the validation writers' drawings, and store it in the model")
    p.add_argument("--model", default=model_dir, help="model.ckpt or a promoted dir")
    p.add_argument("--cache-dir", default=None, help="pen-digit cache (default: the data cache)")
    p.add_argument("--unipen-file", default=None, help="your own UNIPEN file instead of UCI's")
    p.add_argument("--target-precision", type=float, default=0.995,
                   help="answered drawings must be right this often on validation (default 0.995)")
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("export", help="write a model as ONNX and TorchScript with a JSON contract",
                       description="Export the promoted model (or --model) for runtimes without "
                       "this package: model.onnx, model.torchscript.pt and contract.json (input "
                       "shape, dtype, range, polarity, preprocessing, classes, calibration).")
    p.add_argument("--model", default=model_dir, help="model.ckpt or a promoted dir")
    p.add_argument("--out", default=str(Path(model_dir).parent / "exported"),
                   help="output folder (default: models/exported beside the promoted dir)")
    p.add_argument("--format", nargs="+", choices=["onnx", "torchscript"],
                   default=["onnx", "torchscript"], help="which files to write (default both)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("serve", help="read digits over HTTP (JSON API, loopback by default)",
                       description="Start the HTTP API (handwriting/http_api.py): POST an image "
                       "to /predict or /read-number; GET /health, /model. See README, 'HTTP API'.")
    p.add_argument("--model", default=model_dir, help="model.ckpt or a promoted dir")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; "
                        "0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: fastest for these small models)")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("info", help="show the promoted model's metrics and provenance")
    p.add_argument("--model", default=model_dir)
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
