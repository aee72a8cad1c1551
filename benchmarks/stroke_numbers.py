"""Whole numbers written with real pens: the stroke reader versus the pixel reader.

Each number is 2-8 digits by ONE held-out writer (the pen-digits test split, split by
writer exactly as in training: ``pendigits.*`` in conf/config.yaml), laid out on the
app's number canvas (700x200, growing wider for long numbers) with the spacing people
leave, drawn as the canvas draws it (``render.draw_ink``: fabric.js smoothing, round
pen of 12-24 px), strokes kept in drawing order. Every number has a digit height of
70-120 px, a size change per digit (x0.8-1.2), a baseline that drifts (slope up to
+-0.06) and a per-digit jitter of +-5% of the height. Spacing (between neighbours' ink
boxes, pen included, in digit heights):

- *separated*: a gap of 0.15-0.6;
- *touching*: from 0.08 overlap to touching (0.0);
- *overlapping*: boxes overlap by 0.08-0.3.

Readers: the stroke reader (``stroke_reading.read_strokes``), today's pixel reader
(``reading.read_number`` on the same canvas), Tesseract (``read_line``, a small sample:
it is slow) and, as the per-character yardstick, the same model on each digit's own
strokes (the true grouping: "digits apart"). Scores: whole number right, per character
(1 - edit distance / length, each number's distance capped at its length), right count of
characters (segmentation).

    python -m benchmarks.stroke_numbers --checkpoint outputs/app_promoted/model.ckpt \\
        --pendigits-cache /work/shared/data/pendigits --n 300
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common

SPACINGS = {"separated": (0.15, 0.6), "touching": (-0.08, 0.0), "overlapping": (-0.3, -0.08)}
TARGETS = {"separated": {"right count": 0.995, "whole number": 0.93},
           "touching": {"right count": 0.97, "whole number": 0.85},
           "overlapping": {"right count": 0.97, "whole number": 0.85}}
CANVAS = (700, 200)  # the app's NUMBER_CANVAS
MIN_DIGITS, SEED, SPLIT_SEED = 2, 0, 0
STROKE_READER, PIXEL_READER, APART, TESSERACT = (
    "strokes (read_strokes)", "pixels (read_number)", "digits apart (true grouping)", "Tesseract (read_line)")


def compose(rng: np.random.Generator, digits: list[tuple[np.ndarray, ...]], spacing: str
            ) -> tuple[list[np.ndarray], list[int], float, tuple[int, int]]:
    """(strokes in canvas px, strokes per digit, pen width, canvas (width, height)) for one
    number of ``digits`` (each a tuple of (N, 2) strokes, y down) laid out with ``spacing``."""
    height = rng.uniform(70, 120)
    pen = float(rng.uniform(12, 24))
    slope, placed, counts, x = rng.uniform(-0.06, 0.06), [], [], 0.0
    for strokes in digits:
        points = np.concatenate(strokes)
        low, high = points.min(axis=0), points.max(axis=0)
        size = high - low
        factor = height * rng.uniform(0.8, 1.2) / max(size[1], 0.5 * size[0], 1e-6)
        gap = rng.uniform(*SPACINGS[spacing]) * height if placed else 0.0
        left = x + gap  # the ink box's left edge (pen included)
        bottom = slope * left + rng.uniform(-0.05, 0.05) * height  # the baseline, drifting
        shift = np.array([left + pen / 2, bottom - size[1] * factor]) - low * factor
        placed += [s.astype(np.float64) * factor + shift for s in strokes]
        counts.append(len(strokes))
        x = left + size[0] * factor + pen
    points = np.concatenate(placed)
    margin = 0.2 * height
    low = points.min(axis=0) - pen / 2
    room = CANVAS[1] - 2 * margin
    span = points[:, 1].max() - points[:, 1].min() + pen
    if span > room:  # a steep drift: the writer writes a little smaller to stay on the canvas
        placed = [(s - low) * ((room - pen) / (span - pen)) + low for s in placed]
        points = np.concatenate(placed)
    offset = np.array([margin, margin]) - (points.min(axis=0) - pen / 2)
    placed = [s + offset for s in placed]
    width = max(CANVAS[0], int(np.ceil(np.concatenate(placed)[:, 0].max() + pen / 2 + margin)))
    return placed, counts, pen, (width, CANVAS[1])


def make_numbers(part: Any, n: int, seed: int, lengths: tuple[int, int]) -> list[dict[str, Any]]:
    """``n`` numbers per spacing, each of one writer's digits; deterministic from ``seed``."""
    rng = np.random.default_rng(seed)
    writers = np.asarray(part.writers)
    names = sorted(set(writers.tolist()))
    if not names:
        raise common.BenchmarkError("the held-out split has no writers: hold some out (--test-writers)")
    numbers = []
    for spacing in SPACINGS:
        for _ in range(n):
            writer = names[int(rng.integers(len(names)))]
            pool = np.flatnonzero(writers == writer)
            picks = rng.choice(pool, size=int(rng.integers(lengths[0], lengths[1] + 1)))
            strokes, counts, pen, size = compose(rng, [part.strokes[i] for i in picks], spacing)
            numbers.append({"spacing": spacing, "writer": writer, "strokes": strokes, "counts": counts,
                            "pen": pen, "size": size, "text": "".join(str(part.labels[i]) for i in picks)})
    return numbers


def read_all(numbers: list[dict[str, Any]], predictor: Any, tesseract: int) -> tuple[dict, dict]:
    from handwriting import ocr, tesseract_binary
    from handwriting.preprocessing import EmptyImageError, prepare_image
    from handwriting.reading import read_number
    from handwriting.render import draw_ink
    from handwriting.stroke_format import StrokeDrawing
    from handwriting.stroke_reading import read_strokes, render_group

    answers: dict[str, list[str]] = {STROKE_READER: [], PIXEL_READER: [], APART: []}
    seconds = {name: 0.0 for name in answers}
    for item in numbers:
        drawing = StrokeDrawing(tuple(item["strokes"]), *item["size"], item["pen"])
        start = time.perf_counter()
        answers[STROKE_READER].append(read_strokes(drawing, predictor).text)
        seconds[STROKE_READER] += time.perf_counter() - start
        start = time.perf_counter()
        item["ink"] = draw_ink(item["strokes"], item["pen"], (item["size"][1], item["size"][0]))
        try:
            answers[PIXEL_READER].append(read_number(item["ink"], predictor).text)
        except EmptyImageError:
            answers[PIXEL_READER].append("")
        seconds[PIXEL_READER] += time.perf_counter() - start
        bounds = np.cumsum([0, *item["counts"]])
        inputs = np.stack([prepare_image(render_group(item["strokes"][a:b], item["pen"])[0])
                           for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
        probs = predictor.probabilities(inputs)
        answers[APART].append("".join(predictor.classes[int(k)] for k in probs.argmax(axis=1)))
    if tesseract and tesseract_binary.tesseract_available():
        reader, picked = ocr.TesseractReader(), []
        for spacing in SPACINGS:
            picked += [i for i, item in enumerate(numbers) if item["spacing"] == spacing][:tesseract]
        start = time.perf_counter()
        answers[TESSERACT] = {i: reader.read_line(numbers[i]["ink"]).text or "" for i in picked}
        seconds[TESSERACT] = time.perf_counter() - start
    return answers, seconds


def score(predicted: list[str], truth: list[str]) -> dict[str, Any]:
    """Whole-number accuracy, per-character accuracy (1 - capped edit distance / length, over
    all characters), right-length rate and empty-answer rate."""
    from torchmetrics.functional.text import edit_distance

    if not truth:
        return {"n": 0, "whole_accuracy": None, "char_accuracy": None,
                "right_length": None, "empty": None}
    n = len(truth)
    distances = edit_distance(predicted, truth, reduction="none").tolist()
    errors = sum(min(d, len(t)) for d, t in zip(distances, truth, strict=True))
    whole = sum(p == t for p, t in zip(predicted, truth, strict=True))
    return {"n": n, "whole_correct": whole, "whole_accuracy": whole / n,
            "char_accuracy": 1.0 - errors / sum(len(t) for t in truth),
            "right_length": sum(len(p) == len(t) for p, t in zip(predicted, truth, strict=True)) / n,
            "empty": sum(not p for p in predicted) / n}


def results(numbers: list[dict[str, Any]], answers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, read in answers.items():
        index = list(read) if isinstance(read, dict) else list(range(len(numbers)))
        texts = [read[i] for i in index]
        out[name] = {"all": score(texts, [numbers[i]["text"] for i in index])}
        for spacing in SPACINGS:
            keep = [k for k, i in enumerate(index) if numbers[i]["spacing"] == spacing]
            out[name][spacing] = score([texts[k] for k in keep], [numbers[index[k]]["text"] for k in keep])
    return out


def verdicts(res: dict[str, Any], apart: dict[str, Any]) -> list[str]:
    lines = []
    for spacing, targets in TARGETS.items():
        row = res[spacing]
        for what, target in targets.items():
            value = row["right_length" if what == "right count" else "whole_accuracy"]
            met = value is not None and value >= target
            lines.append(f"- {spacing}, {what} >= {target:.1%}: {common.pct(value)} -> {'met' if met else 'NOT met'}")
        char, single = row["char_accuracy"], apart[spacing]["char_accuracy"]
        ok = char is not None and single is not None and char >= single - 0.005
        lines.append(f"- {spacing}, per character {common.pct(char)} vs the same digits read apart {common.pct(single)}"
                     f" -> {'met' if ok else 'NOT met'} (within 0.5 points)")
    return lines


def report(payload: dict[str, Any]) -> str:
    res, cfg = payload["results"], payload["config"]
    headers = ["reader", "n", *(f"{s}: whole / char / count" for s in SPACINGS), "all: whole / char / count"]
    rows = [[name, str(r["all"]["n"]), *(
        f"{common.pct(r[k]['whole_accuracy'])} / {common.pct(r[k]['char_accuracy'])} / {common.pct(r[k]['right_length'])}"
        for k in (*SPACINGS, "all"))] for name, r in res.items()]
    lines = ["# Numbers written with real pens: strokes versus pixels", "",
             f"{cfg['n_per_spacing']} numbers per spacing of {cfg['digits'][0]}-{cfg['digits'][1]} digits, "
             f"each by one of {cfg['writers']} held-out test writers ({cfg['split']}), seed {cfg['seed']}; "
             f"model {cfg['model']}. See the docstring of `benchmarks/stroke_numbers.py` for the layout. "
             "Cells: whole number right / per character / right count of characters.", "",
             common.table(headers, rows), "",
             f"Tesseract: {cfg['tesseract']}. Seconds: "
             + ", ".join(f"{k} {v:.1f}" for k, v in payload["seconds"].items()), "",
             "## Targets (stroke reader)", "", *verdicts(res[STROKE_READER], res[APART]), ""]
    lines += ["Examples (truth: strokes / pixels):", "",
              ", ".join(f"{e['truth']} ({e['spacing']}): {e['strokes']} / {e['pixels']}"
                        for e in payload["examples"]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from handwriting import tesseract_binary
    from handwriting.data.pen_source import PenDigits
    p = common.cli(__doc__, threads=False)
    p.add_argument("--checkpoint", type=Path, required=True, help="model checkpoint (a digit model)")
    common.add_pendigits(p)
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="whose numbers: test writers (report) or validation writers (tuning)")
    p.add_argument("--n", type=common.positive_int, default=300, help="numbers per spacing")
    p.add_argument("--max-digits", type=common.positive_int, default=8, help=f">= {MIN_DIGITS}")
    p.add_argument("--tesseract", type=int, default=20, help="numbers per spacing for Tesseract (0: none)")
    p.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    args = p.parse_args(argv)
    args.min_digits, args.seed, args.split_seed = MIN_DIGITS, SEED, SPLIT_SEED
    if args.max_digits < MIN_DIGITS:
        raise common.BenchmarkError(f"--max-digits must be >= {MIN_DIGITS}")
    predictor = common.load_predictor(args.checkpoint)[0]
    if list(predictor.classes) != [str(d) for d in range(10)]:
        raise common.BenchmarkError(f"{args.checkpoint} reads {predictor.classes}, not the digits 0-9")
    source = PenDigits(cache_dir=args.pendigits_cache, download=False, val_writers=args.val_writers,
                       test_writers=args.test_writers, split_seed=args.split_seed,
                       unipen_file=args.unipen_file)
    try:
        parts, _ = source.strokes()
    except (FileNotFoundError, OSError, ValueError) as error:
        raise common.BenchmarkError(f"cannot read the pen digits: {error}") from error
    part = parts[args.split]
    numbers = make_numbers(part, args.n, args.seed, (args.min_digits, args.max_digits))
    answers, seconds = read_all(numbers, predictor, args.tesseract)
    version = tesseract_binary.tesseract_version()
    payload: dict[str, Any] = {
        "benchmark": "stroke_numbers", "machine": common.machine_info(), "seconds": seconds,
        "config": {"n_per_spacing": args.n, "digits": [args.min_digits, args.max_digits],
                   "seed": args.seed, "split": f"{args.split} split, split_seed {args.split_seed}",
                   "writers": len(set(np.asarray(part.writers).tolist())), "model": str(args.checkpoint),
                   "spacings": SPACINGS,
                   "tesseract": (f"{version}, {args.tesseract} numbers per spacing" if version and args.tesseract
                                 else "not run" + ("" if version else " (not installed)"))},
        "results": results(numbers, answers),
        "examples": [{"truth": item["text"], "spacing": item["spacing"],
                      "strokes": answers[STROKE_READER][i] or "-", "pixels": answers[PIXEL_READER][i] or "-"}
                     for i, item in enumerate(numbers) if i % max(1, len(numbers) // 12) == 0],
    }
    text = report(payload)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    common.write_json(args.json_out, payload)
    return 0


if __name__ == "__main__":
    sys.exit(common.run_main(main))
