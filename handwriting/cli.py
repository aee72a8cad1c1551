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
import sys
from pathlib import Path

from handwriting import cli_model, cli_read


def default_model_dir() -> Path:
    """Where the app loads from (see ``promotion.default_promoted_dir``)."""
    from handwriting.promoted_dir import default_promoted_dir

    return default_promoted_dir()


def _cmd_promote(args: argparse.Namespace) -> int:
    from handwriting.promotion import promote
    from handwriting.runs import best_run, find_runs, ranks_by_drawn

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
    p.set_defaults(func=cli_read.cmd_predict)

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
    p.set_defaults(func=cli_read.cmd_read_number)

    p = sub.add_parser("evaluate", help="accuracy of a model on a source's test split")
    p.add_argument("--data", choices=["embedded", "mnist", "folder"], default="mnist",
                   help="mnist: the official 10k test set (default); embedded: its 1000-image "
                        "split; folder: every image under --root (<split>/<class>/ or <class>/)")
    p.add_argument("--root", default=None,
                   help="image folder for --data folder, e.g. data/drawings (saved from the app)")
    p.add_argument("--cache-dir", default=None, help="MNIST cache dir (default: the data cache)")
    p.add_argument("--model", default=model_dir, help="model.ckpt or a promoted dir")
    p.set_defaults(func=cli_read.cmd_evaluate)

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
    p.set_defaults(func=cli_read.cmd_drawn)

    p = sub.add_parser("calibrate", help="fit a model's confidence, 'not sure' and 'not a digit' "
                       "on the validation writers' drawings, and store it in the model")
    p.add_argument("--model", default=model_dir, help="model.ckpt or a promoted dir")
    p.add_argument("--cache-dir", default=None, help="pen-digit cache (default: the data cache)")
    p.add_argument("--unipen-file", default=None, help="your own UNIPEN file instead of UCI's")
    p.add_argument("--target-precision", type=float, default=0.995,
                   help="answered drawings must be right this often on validation (default 0.995)")
    p.set_defaults(func=cli_model.cmd_calibrate)

    p = sub.add_parser("export", help="write a model as ONNX and TorchScript with a JSON contract",
                       description="Export the promoted model (or --model) for runtimes without "
                       "this package: model.onnx, model.torchscript.pt and contract.json (input "
                       "shape, dtype, range, polarity, preprocessing, classes, calibration).")
    p.add_argument("--model", default=model_dir, help="model.ckpt or a promoted dir")
    p.add_argument("--out", default=str(Path(model_dir).parent / "exported"),
                   help="output folder (default: models/exported beside the promoted dir)")
    p.add_argument("--format", nargs="+", choices=["onnx", "torchscript"],
                   default=["onnx", "torchscript"], help="which files to write (default both)")
    p.set_defaults(func=cli_model.cmd_export)

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
    p.set_defaults(func=cli_model.cmd_serve)

    p = sub.add_parser("info", help="show the promoted model's metrics and provenance")
    p.add_argument("--model", default=model_dir)
    p.set_defaults(func=cli_model.cmd_info)
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
