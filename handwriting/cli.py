"""`handwriting` command line: promote runs, summarize sweeps, read image files.

    handwriting promote outputs/sweeps/2026-11-26_12-00-00 [--force]
    handwriting summarize outputs/sweeps/2026-11-26_12-00-00
    handwriting predict digit.png other.jpg
    handwriting read-number house_number.png
    handwriting evaluate --data mnist
    handwriting evaluate --data folder --root data/drawings
    handwriting info
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
    from handwriting.preprocessing import EmptyImageError, ImageError

    predictor = _load_predictor(args.model)
    status = 0
    for image in args.images:
        try:
            prediction = predictor.predict_image(image)
        except (ImageError, EmptyImageError, FileNotFoundError) as exc:
            print(f"{image}: error: {exc}", file=sys.stderr)
            status = 1
            continue
        top = ", ".join(f"{label} {p:.1%}" for label, p in prediction.top_k(3))
        print(f"{image}: {prediction.label} ({prediction.confidence:.1%})  top-3: {top}")
    return status


def _load_predictor(model: str) -> Predictor:
    from handwriting.inference import Predictor

    return Predictor.from_checkpoint(_model_file(model))


def _cmd_read_number(args: argparse.Namespace) -> int:
    from handwriting.preprocessing import EmptyImageError, ImageError
    from handwriting.reading import read_number

    predictor = _load_predictor(args.model)
    status = 0
    for image in args.images:
        try:
            reading = read_number(image, predictor)
        except (ImageError, EmptyImageError, FileNotFoundError) as exc:
            print(f"{image}: error: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{image}: {reading.text}  (confidence {reading.confidence:.1%}, "
              f"least sure character {reading.min_confidence:.1%})")
        print("  " + "  ".join(f"{c.label} {c.confidence:.1%}" for c in reading.characters))
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

    path = Path(args.model)
    predictor = Predictor.from_checkpoint(path / "model.ckpt" if path.is_dir() else path)
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


def _cmd_info(args: argparse.Namespace) -> int:
    from handwriting.promotion import current_metadata

    meta = current_metadata(args.model)
    if meta is None:
        print(f"No promoted model in {args.model}. Train one: python train.py")
        return 1
    print(json.dumps({k: v for k, v in meta.items() if k != "config"}, indent=2))
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
    p.add_argument("images", nargs="+", metavar="IMAGE")
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
