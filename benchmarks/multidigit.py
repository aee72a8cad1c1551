"""Whole numbers: the MLP (segmentation + one digit at a time, ``handwriting.reading``)
versus Tesseract reading the same line, on numbers composed from held-out test digits.

Each image is 2-6 real test digits side by side (digit height 28-96 px, size x0.85-1.15
per digit, vertical jitter, gaps of -0.15 to 0.45 digit heights, so digits may overlap and
touch), all drawn from seed 0. Per reader: whole number right, per character (1 - edit
distance / length, each image's distance capped at its length), right length; by layout:
*separated*, *overlapping boxes* (ink apart), *touching* (ink 8-connected). "MLP on the
separate digits" reads the source digits alone: its gap to the MLP is what segmentation costs.

    python -m benchmarks.multidigit                         # embedded test split, 300 numbers
    python -m benchmarks.multidigit --data mnist --mnist-dir /path/to/mnist --n 1000
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from benchmarks.common import (
    BenchmarkError,
    add_data,
    cli,
    finish,
    load_data_config,
    load_predictor,
    machine_info,
    pct,
    percentiles,
    positive_int,
    run_main,
    set_threads,
    table,
    timed_map,
)
from benchmarks.tesseract_baseline import leakage_warning

LAYOUTS = ("separated", "overlapping boxes", "touching")
MLP_READER, APART, TESSERACT_READER = ("MLP (segmentation + read_number)",
                                       "MLP on the separate digits", "Tesseract (read_line, psm 7)")
SEED, HEIGHT, GAP, WORKERS = 0, (28, 96), (-0.15, 0.45), 2  # digit height px; gap in heights
TEST_SETS = {"embedded": "embedded data's test split (8000/1000/1000, split_seed 0)",
             "mnist": "official MNIST 10k test set (t10k files)"}


@dataclass(frozen=True)
class Layout:
    """How to lay out one number. Lengths are in units of the digit height ``height``."""

    height: int  # px: height of an average digit's ink
    gaps: tuple[float, ...]  # between neighbours' ink boxes; negative = overlap
    shifts: tuple[float, ...]  # vertical offset of each digit
    scales: tuple[float, ...]  # size of each digit relative to ``height``
    margin: float = 0.3


@dataclass(frozen=True)
class Composed:
    """A composed number: white-on-black float image, its true text and its layout class."""

    image: np.ndarray = field(repr=False)
    text: str
    digit_images: np.ndarray = field(repr=False)  # the source 28x28 digits, float [0, 1]
    gaps_px: tuple[int, ...]
    layout: str  # one of LAYOUTS


def random_layout(rng: np.random.Generator, count: int, height: tuple[int, int] = HEIGHT,
                  gap: tuple[float, float] = GAP, jitter: float = 0.12,
                  scale: tuple[float, float] = (0.85, 1.15)) -> Layout:
    """A random layout for ``count`` digits (all ranges inclusive, uniform)."""
    return Layout(height=int(rng.integers(height[0], height[1] + 1)),
                  gaps=tuple(float(g) for g in rng.uniform(*gap, size=count - 1)),
                  shifts=tuple(float(s) for s in rng.uniform(-jitter, jitter, size=count)),
                  scales=tuple(float(s) for s in rng.uniform(*scale, size=count)))


def _ink_crop(digit: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(digit > 0.05)
    if rows.size == 0:
        raise ValueError("a source digit has no ink")
    return digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _resize(crop: np.ndarray, factor: float) -> np.ndarray:
    h, w = crop.shape
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    resample = Image.Resampling.BILINEAR if factor >= 1 else Image.Resampling.BOX
    out = np.asarray(Image.fromarray(crop.astype(np.float32)).resize(size, resample))
    return np.clip(out, 0.0, 1.0)


def compose_number(digits: Sequence[np.ndarray], text: str, layout: Layout) -> Composed:
    """Lay ``digits`` (28x28, white on black, float [0, 1] or uint8) out left to right.

    Each digit's ink is scaled so an MNIST digit (about 20 px of ink in 28) becomes
    ``layout.height * scale`` px tall; overlapping ink is combined with ``max`` (two pen
    strokes crossing stay one stroke)."""
    if len(digits) != len(text) or len(layout.scales) != len(digits):
        raise ValueError("one digit image, one character and one scale per digit are needed")
    units = [np.asarray(d, dtype=np.float32) for d in digits]
    units = [u / 255.0 if u.max() > 1.0 else u for u in units]
    glyphs = [
        _resize(_ink_crop(u), layout.height * s / 20.0)
        for u, s in zip(units, layout.scales, strict=True)
    ]
    h = layout.height
    xs = [0]
    for glyph, gap in zip(glyphs[:-1], layout.gaps, strict=True):
        xs.append(xs[-1] + glyph.shape[1] + round(gap * h))
    left = min(xs)
    margin = round(layout.margin * h)
    xs = [x - left + margin for x in xs]
    ys = [  # centres on one line, jittered; then shifted so the highest sits at the margin
        round(shift * h - g.shape[0] / 2) for g, shift in zip(glyphs, layout.shifts, strict=True)
    ]
    ys = [y - min(ys) + margin for y in ys]
    width = max(x + g.shape[1] for x, g in zip(xs, glyphs, strict=True)) + margin
    height = max(y + g.shape[0] for y, g in zip(ys, glyphs, strict=True)) + margin
    canvas = np.zeros((height, width), dtype=np.float32)
    masks = []
    for glyph, x, y in zip(glyphs, xs, ys, strict=True):
        region = canvas[y : y + glyph.shape[0], x : x + glyph.shape[1]]
        np.maximum(region, glyph, out=region)
        mask = np.zeros_like(canvas, dtype=bool)
        mask[y : y + glyph.shape[0], x : x + glyph.shape[1]] = glyph > 0.35
        masks.append(mask)
    gaps_px = tuple(
        xs[i + 1] - (xs[i] + glyphs[i].shape[1]) for i in range(len(glyphs) - 1)
    )
    return Composed(canvas, text, np.stack(units), gaps_px, _layout_class(masks, gaps_px))


def _layout_class(masks: Sequence[np.ndarray], gaps_px: Sequence[int]) -> str:
    """Touching when any two neighbours' ink (above the segmentation threshold) are
    8-connected; overlapping boxes when only their boxes overlap; else separated."""
    grow = np.ones((3, 3), dtype=bool)
    for a, b in zip(masks[:-1], masks[1:], strict=True):
        if np.any(ndimage.binary_dilation(a, structure=grow) & b):
            return "touching"
    return "overlapping boxes" if any(g < 0 for g in gaps_px) else "separated"


def compose_dataset(images: np.ndarray, labels: np.ndarray, classes: Sequence[str], n: int,
                    seed: int = SEED, digits: tuple[int, int] = (2, 6),
                    height: tuple[int, int] = HEIGHT, gap: tuple[float, float] = GAP
                    ) -> list[Composed]:
    """``n`` numbers of real test digits; deterministic for a given seed and data."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        count = int(rng.integers(digits[0], digits[1] + 1))
        picks = rng.choice(len(images), size=count, replace=False)
        text = "".join(classes[int(labels[i])] for i in picks)
        layout = random_layout(rng, count, height=height, gap=gap)
        out.append(compose_number(images[picks], text, layout))
    return out


def levenshtein(a: Sequence[str], b: Sequence[str]) -> int:
    """Edit distance (insertions, deletions, substitutions each cost 1)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def score(predicted: Sequence[str], truth: Sequence[str]) -> dict[str, Any]:
    """Whole-number accuracy, per-character accuracy (1 - capped edit distance / length,
    over all characters), right-length rate and empty-answer rate."""
    if len(predicted) != len(truth):
        raise ValueError("one prediction per image is needed")
    if not truth:
        return {"n": 0, "whole_accuracy": None, "char_accuracy": None,
                "right_length": None, "empty": None}
    pairs, n = list(zip(predicted, truth, strict=True)), len(truth)
    errors = sum(min(levenshtein(p, t), len(t)) for p, t in pairs)
    whole = sum(p == t for p, t in pairs)
    return {"n": n, "whole_correct": whole, "whole_accuracy": whole / n,
            "char_accuracy": 1.0 - errors / sum(len(t) for t in truth),
            "right_length": sum(len(p) == len(t) for p, t in pairs) / n,
            "empty": sum(not p for p in predicted) / n}


def breakdown(predicted: Sequence[str], numbers: Sequence[Composed]) -> dict[str, dict[str, Any]]:
    """``score`` overall and per layout class."""
    truth = [c.text for c in numbers]
    out = {"all": score(predicted, truth)}
    for layout in LAYOUTS:
        keep = [i for i, c in enumerate(numbers) if c.layout == layout]
        out[layout] = score([predicted[i] for i in keep], [truth[i] for i in keep])
    return out


def load_test_split(data: str, mnist_dir: Path | None) -> tuple[np.ndarray, np.ndarray, list[str], str, str]:
    """(uint8 images, labels, classes, description, data fingerprint) of the test split,
    exactly as training splits conf/data/<data>.yaml."""
    datamodule = load_data_config(data, mnist_dir, stage="test")
    test = datamodule.splits.test
    return test.images, test.labels, list(datamodule.classes), TEST_SETS[data], datamodule.fingerprint


def model_reader(predictor: Any) -> Callable[[Composed], str]:
    """The app's number reader: segmentation, then the model one digit at a time."""
    from handwriting.preprocessing import EmptyImageError
    from handwriting.reading import read_number

    def read(item: Composed) -> str:
        try:
            return read_number(item.image, predictor).text
        except EmptyImageError:
            return ""

    return read


def readers(predictor: Any, classes: list[str], tesseract: bool) -> dict[str, Callable[[Composed], str]]:
    """Each reader of a composed number: the MLP, the MLP on the source digits apart (perfect
    segmentation), and Tesseract reading the line when asked."""
    from handwriting.preprocessing import center_like_mnist

    def apart(item: Composed) -> str:
        probs = predictor.probabilities(np.stack([center_like_mnist(d) for d in item.digit_images]))
        return "".join(predictor.classes[int(k)] for k in probs.argmax(axis=1))

    out = {MLP_READER: model_reader(predictor), APART: apart}
    if tesseract:
        from handwriting.serving import make_reader

        reader = make_reader(classes)
        out[TESSERACT_READER] = lambda item: ("" if (r := reader.read_line(item.image)).rejected
                                              else r.text)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from handwriting.ocr import tesseract_version

    set_threads(args.threads)
    images, labels, classes, test_desc, fingerprint = load_test_split(args.data, args.mnist_dir)
    predictor, model_desc = load_predictor(args.checkpoint)
    warning = leakage_warning(predictor.metadata or {}, args.data, fingerprint)
    if list(predictor.classes) != classes:
        raise BenchmarkError(f"the model's classes {predictor.classes} are not the test digits' "
                             f"{classes}: this benchmark composes digit strings")
    numbers = compose_dataset(images, labels, classes, args.n, seed=SEED,
                              digits=(args.min_digits, args.max_digits), height=HEIGHT, gap=GAP)
    version = None if args.no_tesseract else tesseract_version()
    note = ("skipped (--no-tesseract)" if args.no_tesseract else
            "not installed: Tesseract rows left out" if version is None else
            f"Tesseract {version}, --psm 7, whitelist {''.join(classes)}")
    results, answers = {}, {}
    for name, reader in readers(predictor, classes, version is not None).items():
        print(f"Reading {len(numbers)} numbers: {name} ...", file=sys.stderr, flush=True)
        workers = WORKERS if name == TESSERACT_READER else 1
        answers[name], ms = timed_map(reader, numbers, workers)
        results[name] = {**breakdown(answers[name], numbers), "ms_per_image": percentiles(ms)}
    return {
        "benchmark": "multidigit",
        "machine": machine_info(),
        "config": {
            "data": args.data, "test_set": test_desc, "test_digits": len(images), "n": args.n,
            "seed": SEED, "digits": [args.min_digits, args.max_digits],
            "digit_height_px": list(HEIGHT), "gap_in_digit_heights": list(GAP),
            "vertical_jitter": 0.12, "per_digit_scale": [0.85, 1.15],
            "model": model_desc, "tesseract": note, "leakage_warning": warning,
            "model_data_source": (predictor.metadata or {}).get("data_source"),
        },
        "layouts": {layout: sum(c.layout == layout for c in numbers) for layout in LAYOUTS},
        "results": results,
        "examples": [{"truth": c.text, "layout": c.layout, **{k: v[i] for k, v in answers.items()}}
                     for i, c in enumerate(numbers[:20])],
    }


def headline(p: dict[str, Any]) -> str:
    cfg, res = p["config"], p["results"]

    def both(layout: str) -> str:
        return " vs ".join(f"{name.split(' (')[0]} {pct(res[name][layout]['whole_accuracy'])} / "
                           f"{pct(res[name][layout]['char_accuracy'])}"
                           for name in (MLP_READER, TESSERACT_READER) if name in res)

    return (f"whole numbers of {cfg['digits'][0]}-{cfg['digits'][1]} test digits ({cfg['n']:,} "
            f"numbers, {cfg['data']}), whole number / per character: {both('all')}; separated: "
            f"{both('separated')}; touching: {both('touching')}")


def markdown(p: dict[str, Any]) -> str:
    cfg, results, counts = p["config"], p["results"], p["layouts"]
    rows = [[name, pct(r["all"]["whole_accuracy"]), pct(r["all"]["char_accuracy"]),
             pct(r["all"]["right_length"]), pct(r["all"]["empty"]),
             f"{r['ms_per_image']['p50']:.1f}"] for name, r in results.items()]
    by_layout = [[name, *(f"{pct(r[k]['whole_accuracy'])} / {pct(r[k]['char_accuracy'])}"
                          for k in LAYOUTS)] for name, r in results.items()]
    return "\n\n".join(filter(None, [
        f"{cfg['n']:,} numbers of {cfg['digits'][0]}-{cfg['digits'][1]} real digits drawn from "
        f"the {cfg['test_digits']:,} of the {cfg['test_set']}, seed {cfg['seed']}: digit height "
        f"{cfg['digit_height_px'][0]}-{cfg['digit_height_px'][1]} px, gaps of "
        f"{cfg['gap_in_digit_heights'][0]:g} to {cfg['gap_in_digit_heights'][1]:g} digit heights "
        "(negative: neighbours overlap). Whole number = the string read is exactly right; per "
        "character = 1 - edit distance / length; right length = as many characters as digits. "
        f"MLP: {cfg['model']}. Tesseract: {cfg['tesseract']}.",
        table(["reader", "whole number", "per character", "right length", "empty answer",
               "ms/number p50"], rows),
        "By layout (whole number / per character):",
        table(["reader", *(f"{k} ({counts[k]:,})" for k in LAYOUTS)], by_layout),
        "\"MLP on the separate digits\" is the same model on each source digit alone: its gap "
        "to the MLP row is what segmentation costs.",
        cfg.get("leakage_warning") and f"**Warning:** {cfg['leakage_warning']}.",
    ]))


def main(argv: list[str] | None = None) -> int:
    p = cli(__doc__)
    add_data(p)
    p.add_argument("--n", type=positive_int, default=300, help="numbers to compose")
    p.add_argument("--min-digits", type=positive_int, default=2)
    p.add_argument("--max-digits", type=positive_int, default=6)
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="model checkpoint (default: the promoted model)")
    p.add_argument("--no-tesseract", action="store_true", help="leave Tesseract out")
    args = p.parse_args(argv)
    if args.min_digits > args.max_digits:
        raise BenchmarkError("--min-digits must be <= --max-digits")
    payload = run(args)
    return finish(payload, markdown(payload), args.json_out)


if __name__ == "__main__":
    sys.exit(run_main(main))
