"""Real drawings: how well each model reads digits people drew, by writers it never saw.

The held-out writers' pen trajectories (UCI pen digits, split by writer as in training) are
drawn on the app's canvas exactly as a run's ``drawn/acc`` draws them and read as
``Predictor.predict_canvas`` does (batched, checked equal to it). Per model: overall, worst /
median writer, per class, top confusions, mean confidence when right and wrong, validation
writers, the model's own test accuracy; Tesseract reads the same canvases' ink (~0.3-1 s each).

    python -m benchmarks.real_drawings --model default=outputs/bench/default \\
        --model app=models/promoted --pendigits-cache /work/shared/data/pendigits

``--model NAME=PATH`` (repeatable): a checkpoint, a promoted dir (model.ckpt) or a run dir
(run.json's best checkpoint). Targets apply to the names ``app`` and ``default``.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks import common
from handwriting.data.pen_source import EVAL_STYLE, PenDigits
from handwriting.data.pendigits import LICENSE_NOTE
from handwriting.preprocessing import prepare_canvas
from handwriting.render import render_canvas

CLASSES = [str(d) for d in range(10)]
TARGETS = {"app": {"overall": 0.985, "worst writer": 0.95, "MNIST test": 0.993},
           "default": {"overall": 0.90}}
SPLIT_KEYS = ("unipen_file", "official_test", "val_writers", "test_writers", "split_seed",
              "render_seed")
HEADERS = ["model", "checkpoint", "drawings", "overall %", "worst writer %", "median writer %",
           "val writers %", "conf. right %", "conf. wrong %", "top 5 confusions (true→read)",
           "own test acc (data, n)", "target"]


def draw(source: PenDigits, split: str, part: Any) -> tuple[np.ndarray, list[np.ndarray], list]:
    """(prepared 28x28 inputs, ink crops for Tesseract, first canvases) of a held-out split."""
    rng = np.random.default_rng(source.render_seed_for(split))
    prepared, inks, firsts = [], [], []
    for strokes in part.strokes:
        canvas = render_canvas(strokes, rng, EVAL_STYLE)
        prepared.append(prepare_canvas(canvas))
        rows, cols = np.nonzero(canvas[..., 3])
        inks.append(canvas[rows.min():rows.max() + 1, cols.min():cols.max() + 1, 3].copy())
        if len(firsts) < 3:
            firsts.append(canvas)
    return np.stack(prepared), inks, firsts


def load_model(path: Path) -> tuple[Any, Path, dict[str, Any]]:
    """(predictor, checkpoint, run info: metrics / data_source / config / command)."""
    path, info = path.expanduser(), {}
    if path.is_dir() and (path / "model.ckpt").is_file():
        path = path / "model.ckpt"
    elif path.is_dir() and (path / "run.json").is_file():
        info = json.loads((path / "run.json").read_text())
        path = path / info["best_checkpoint"]
    if not path.is_file():
        raise common.BenchmarkError(f"--model {path}: no checkpoint, promoted dir or finished run dir")
    predictor = common.load_predictor(path)[0]
    if list(predictor.classes) != CLASSES:
        raise common.BenchmarkError(f"{path} reads {predictor.classes}, not the digits 0-9")
    info = info or dict(predictor.metadata)
    run_dir = Path(info.get("run_dir") or next(
        (p for p in path.parents[:3] if (p / "run.json").is_file() or (p / ".hydra").is_dir()),
        path.parent))
    if not info and (run_dir / "run.json").is_file():
        info = json.loads((run_dir / "run.json").read_text())
    overrides = run_dir / ".hydra" / "overrides.yaml"
    if overrides.is_file():
        overridden = yaml.safe_load(overrides.read_text()) or []
        info["command"] = "python train.py " + shlex.join(overridden)
    return predictor, path, info


def score(predicted: np.ndarray, conf: np.ndarray, labels: np.ndarray, writers: np.ndarray) -> dict:
    right = predicted == labels
    per_writer = {w: right[writers == w].mean() for w in sorted(set(writers.tolist()))}
    pairs = Counter((CLASSES[t], "?" if p < 0 else CLASSES[p])
                    for t, p in zip(labels, predicted, strict=True) if t != p)
    accs = list(per_writer.values())
    confusions = ", ".join(f"{t}→{p} ×{n}" for (t, p), n in pairs.most_common(5))
    return {"n": len(labels), "overall": right.mean(), "worst writer": min(accs),
            "median": float(np.median(accs)), "per writer": per_writer,
            "per class": [right[labels == c].mean() if (labels == c).any() else np.nan
                          for c in range(10)],
            "confusions": confusions or "none",
            "conf right": conf[right].mean() if right.any() else np.nan,
            "conf wrong": conf[~right].mean() if (~right).any() else np.nan}


def own_test(info: dict[str, Any]) -> tuple[str, float | None]:
    """The model's own recorded test accuracy, and it again if that test is MNIST's official 10k."""
    metrics = info.get("metrics") or {}
    data = ((info.get("config") or {}).get("data") or {}).get("source") or {}
    if "test/acc" not in metrics:
        return "n/a", None
    n = int(metrics.get("test/size", 0))  # 0: not recorded
    official = n == 10000 and (str(data.get("_target_")).endswith(".MNIST")
                               or data.get("test_from") == "mnist")
    label = info.get("data_source") or str(data.get("_target_", "?")).rsplit(".", 1)[-1]
    return (f"{metrics['test/acc']:.2%} ({label}{f', {n:,}' if n else ''})",
            metrics["test/acc"] if official else None)


def verdict(name: str, row: dict, mnist: float | None) -> str:
    values = {"overall": row["overall"], "worst writer": row["worst writer"], "MNIST test": mnist}
    return "; ".join(f"{k} ≥ {v:.1%}: " + ("unknown" if values[k] is None else
                                           "met" if values[k] >= v else "NOT met")
                     for k, v in TARGETS.get(name, {}).items()) or "—"


def pct(x: Any) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = common.cli(__doc__, threads=False, json_out=False)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=PATH")
    common.add_pendigits(parser)
    parser.add_argument("--tesseract", type=int, default=None, metavar="N",
                        help="Tesseract on a seeded N of the test drawings (default all; 0: skip)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("REAL_DRAWINGS.md"))
    args = parser.parse_args(argv)
    commands = ["python -m benchmarks.real_drawings "
                + shlex.join(sys.argv[1:] if argv is None else argv)]
    started = time.perf_counter()
    models = [spec.partition("=")[::2] for spec in args.model]
    if any(not name or not path for name, path in models):
        raise common.BenchmarkError("--model expects NAME=PATH")
    loaded = [(name, *load_model(Path(path))) for name, path in models]
    source = PenDigits(cache_dir=args.pendigits_cache, download=False, unipen_file=args.unipen_file,
                       val_writers=args.val_writers, test_writers=args.test_writers)
    parts, paths = source.strokes()
    test, val = parts["test"], parts["val"]
    x_test, inks, firsts = draw(source, "test", test)
    x_val = draw(source, "val", val)[0]
    same = np.array_equal(np.round(x_test * 255).astype(np.uint8), source.load().test.images)
    print(f"Drew {len(x_test)} test and {len(x_val)} validation drawings in "
          f"{time.perf_counter() - started:.0f} s")

    rows, per_class, per_writer, notes = [], [], [], []
    writers = sorted(set(test.writers.tolist()))

    def add(name: str, where: str, row: dict, val_acc: str, own: str, target: str) -> None:
        """A reader's row in each of the three tables (models and Tesseract alike)."""
        rates = (row["overall"], row["worst writer"], row["median"])
        rows.append([name, where, row["n"], *map(pct, rates), val_acc, pct(row["conf right"]),
                     pct(row["conf wrong"]), row["confusions"], own, target])
        per_class.append([name, *map(pct, row["per class"])])
        per_writer.append([name, *(pct(row["per writer"].get(w)) for w in writers)])

    for name, predictor, ckpt, info in loaded:
        for canvas in firsts:  # the batched reading must be the app's own call
            batched = predictor.probabilities(prepare_canvas(canvas)[None])[0]
            if not np.allclose(predictor.predict_canvas(canvas).probabilities, batched, atol=1e-5):
                raise common.BenchmarkError("batched evaluation differs from Predictor.predict_canvas")
        probs = predictor.probabilities(x_test)
        row = score(probs.argmax(1), probs.max(1), test.labels, test.writers)
        row["val"] = (predictor.probabilities(x_val).argmax(1) == val.labels).mean()
        trained = (info.get("config") or {}).get("pendigits") or {}
        if any(str(trained[k]) != str(getattr(source, k)) for k in SPLIT_KEYS if k in trained):
            notes.append(f"{name}: trained with pendigits settings {trained}: "
                         "held-out writers may differ")
        recorded = (info.get("metrics") or {}).get("drawn/acc")
        if recorded is not None and f"{recorded:.2%}" != f"{row['overall']:.2%}":
            notes.append(f"{name}: its run recorded drawn/acc {recorded:.2%} (8-bit inputs), "
                         f"{row['overall']:.2%} here")
        if info.get("command"):
            commands.append(f"{info['command']}   # {name}")
        mnist_text, mnist = own_test(info)
        add(name, f"`{ckpt}`", row, pct(row["val"]), mnist_text, verdict(name, row, mnist))

    tess_n = len(x_test) if args.tesseract is None else max(0, min(args.tesseract, len(x_test)))
    tess_seconds = 0.0
    if tess_n:
        from handwriting.ocr import TesseractReader
        from handwriting.tesseract_binary import TesseractUnavailable, tesseract_version

        pick = np.sort(np.random.default_rng(0).choice(len(x_test), tess_n, replace=False))
        version = tesseract_version()
        try:
            if version is None:
                raise TesseractUnavailable("tesseract", "not found")
            tess_started = time.perf_counter()
            results = TesseractReader().read_chars([inks[i] for i in pick], workers=2)
            tess_seconds = time.perf_counter() - tess_started
            guess = np.array([-1 if r.rejected else int(r.text) for r in results])
            conf = np.array([r.confidence or 0.0 for r in results])
            add(f"Tesseract {version}", f"{tess_n} of {len(x_test)} drawings",
                score(guess, conf, test.labels[pick], test.writers[pick]), "not run", "—", "—")
            notes.append(f"Tesseract: {(guess < 0).mean():.1%} rejected (counted wrong, '?' in "
                         f"confusions); {1000 * tess_seconds / tess_n:.0f} ms/drawing, 2 workers")
        except TesseractUnavailable as error:
            rows.append(["Tesseract", f"not run: {error}", 0, *["n/a"] * 6, "—", "—", "—"])
    summary = common.table(HEADERS, rows)
    print(summary)
    seconds = time.perf_counter() - started
    own_file = "a UNIPEN file of your own (not UCI's)."
    text = "\n\n".join([
        "# Real drawings by held-out writers\n\nGenerated by `python -m benchmarks.real_drawings`: "
        f"do not edit by hand, rerun it. Runtime {seconds:.0f} s (Tesseract {tess_seconds:.0f} s), "
        f"load average {common.load_average()}, {time.strftime('%Y-%m-%d %H:%M %Z')}.",
        "```bash\n" + "\n".join(commands) + "\n```",
        f"**Data.** {', '.join(str(p) for p in paths.values())}: "
        f"{own_file if args.unipen_file else LICENSE_NOTE} Writers held out "
        f"(never trained on; split_seed {source.split_seed}): test {', '.join(writers)} "
        f"({len(x_test)} drawings, the table), validation {', '.join(sorted(set(val.writers)))} "
        f"({len(x_val)} drawings, 'val writers'). Each trajectory drawn once on the app's "
        f"{EVAL_STYLE.canvas_size} px canvas (pen {EVAL_STYLE.stroke_width} px, size "
        f"{EVAL_STYLE.size}, render seed {source.render_seed_for('test')}), read through "
        "`prepare_canvas` as `Predictor.predict_canvas` does. Same drawings as the runs' "
        "`drawn/acc` (which stores them as 8-bit images, read here as floats): "
        f"{'yes' if same else 'NO'}. Tesseract reads the canvas's ink "
        "(`TesseractReader.read_char`, single character).",
        summary,
        "**Per class (accuracy %, test writers)**\n\n" + common.table(["model", *CLASSES], per_class),
        "**Per test writer (accuracy %)**\n\n" + common.table(["model", *writers], per_writer),
        "\n".join(f"- {note}" for note in notes) or "- no notes",
    ]) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"Written to {args.out} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(common.run_main(main))
