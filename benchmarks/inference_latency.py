"""How long the app waits for an answer: one RGBA 280x280 canvas drawing through
``Predictor.predict_canvas`` (preprocessing included), timed call by call in-process after a
warm-up (p50/p95/p99), also split into preprocessing and model; plus the model's batch
throughput on prepared 28x28 images. With torch's default thread count, then 1 thread;
target p50 < 5 ms. Without --checkpoint an untrained reference MLP (784-128-128-10) is
timed (latency depends on the architecture, not the weights) and the output says so.

    python -m benchmarks.inference_latency [--checkpoint models/promoted/model.ckpt]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks import common
from handwriting.data.embedded import EmbeddedMNIST
from handwriting.inference import Predictor
from handwriting.model import MLPClassifier
from handwriting.preprocessing import prepare_canvas

TARGET_P50_MS = 5.0
# Unmeasured calls first, seconds of batches per throughput repeat, repeats, batch sizes;
# --quick: a smoke run that checks the code, not the numbers.
FULL = {"warmup": 50, "min_time": 0.5, "repeats": 3, "batch_sizes": [1, 64, 1024]}
QUICK = {"calls": 20, "warmup": 2, "min_time": 0.01, "repeats": 1, "batch_sizes": [1, 8]}
# The packaged training digit 0 (a 7) redrawn as an app canvas drawing: round pen 18 px,
# 60 % of the canvas, seed 0, by the since-retired benchmarks/strokes.py (see README.md).
CANVAS = Path(__file__).with_name("inference_canvas.png")


def latency(fn: Callable[[], Any], args: argparse.Namespace) -> dict[str, float]:
    """Percentiles, mean, min and max of ``fn()``'s wall time in ms, after a warm-up."""
    for _ in range(args.warmup):
        fn()
    ms = common.timed_map(lambda _: fn(), range(args.calls))[1]
    return {**common.percentiles(ms), "mean": float(np.mean(ms)), "min": min(ms), "max": max(ms)}


def throughput(predictor: Predictor, images: np.ndarray, batch: int,
               args: argparse.Namespace) -> dict[str, float]:
    """Images/s of ``predictor.probabilities`` on batches of ``batch`` prepared images:
    each repeat runs whole batches (at least 3) for at least ``args.min_time`` seconds."""
    data = np.resize(images, (batch, *images.shape[1:]))  # the images repeated up to ``batch``
    predictor.probabilities(data)  # warm-up
    rates = []
    for _ in range(args.repeats):
        n, elapsed, start = 0, 0.0, time.perf_counter()
        while n < 3 or elapsed < args.min_time:
            predictor.probabilities(data)
            n += 1
            elapsed = time.perf_counter() - start
        rates.append(n * batch / elapsed)
    stats = common.summarize(rates)
    return {"batch": batch, "images_per_s_median": stats["median"],
            "images_per_s_best": stats["max"],
            "ms_per_batch_median": batch / stats["median"] * 1000}


def run(args: argparse.Namespace) -> dict[str, Any]:
    default_threads = torch.get_num_threads()
    settings = list(dict.fromkeys([default_threads, 1]))
    if args.checkpoint is not None:
        predictor, model_desc = common.load_predictor(args.checkpoint)
    else:
        torch.manual_seed(0)
        predictor = Predictor(MLPClassifier())
        model_desc = "untrained reference MLP 784-128-128-10 (no --checkpoint)"
    data = EmbeddedMNIST().load().train
    images = data.images[: max(args.batch_sizes)].astype(np.float32) / 255.0
    canvas = np.asarray(Image.open(CANVAS).convert("RGBA"))
    prepared = prepare_canvas(canvas)
    runs = []
    for threads in settings:
        torch.set_num_threads(threads)
        lat = {"predict_canvas": latency(lambda: predictor.predict_canvas(canvas), args),
               "preprocessing": latency(lambda: prepare_canvas(canvas), args),
               "model": latency(lambda: predictor.predict(prepared), args)}
        runs.append({"torch_threads": torch.get_num_threads(), "latency_ms": lat,
                     "throughput": [throughput(predictor, images, b, args)
                                    for b in args.batch_sizes],
                     "within_target": lat["predict_canvas"]["p50"] < TARGET_P50_MS})
    torch.set_num_threads(default_threads)
    prediction = predictor.predict_canvas(canvas)
    return {
        "benchmark": "inference_latency", "machine": common.machine_info(),
        "config": {
            "model": model_desc, "trained": args.checkpoint is not None,
            "canvas": "a real digit redrawn as canvas strokes (benchmarks/inference_canvas.png)",
            "canvas_shape": list(canvas.shape), "digit_label": int(data.labels[0]),
            "calls": args.calls, "warmup": args.warmup, "default_torch_threads": default_threads,
            "thread_settings": settings, "batch_sizes": args.batch_sizes,
            "min_time_s": args.min_time, "repeats": args.repeats,
        },
        "prediction": {"label": prediction.label, "confidence": prediction.confidence},
        "runs": runs,  # the headline below: the first setting, torch's default thread count
        "latency_ms": runs[0]["latency_ms"], "throughput": runs[0]["throughput"],
        "target_p50_ms": TARGET_P50_MS, "within_target": runs[0]["within_target"],
        "note": common.NOISE_NOTE,
    }


def headline(p: dict[str, Any]) -> str:
    default = p["config"].get("default_torch_threads")
    return "; ".join(
        f"canvas -> prediction latency, {run['torch_threads']} thread(s)"
        f"{' (torch default)' if run['torch_threads'] == default else ''}: p50 "
        f"{run['latency_ms']['predict_canvas']['p50']:.2f} ms, p95 "
        f"{run['latency_ms']['predict_canvas']['p95']:.2f} ms "
        f"(target p50 < {p['target_p50_ms']:g} ms)" for run in p["runs"])


def markdown(p: dict[str, Any]) -> str:
    cfg = p["config"]
    out = [f"Model: {cfg['model']}. Input: one {cfg['canvas_shape'][0]}x{cfg['canvas_shape'][1]} "
           f"RGBA canvas, {cfg['canvas']} (true label {cfg['digit_label']}, read as "
           f"{p['prediction']['label']}). {cfg['calls']} timed calls after {cfg['warmup']} "
           f"warm-up per row, in-process; throughput runs batches for >= {cfg['min_time_s']} s, "
           f"{cfg['repeats']} repeats."]
    names = {"predict_canvas": "`predict_canvas` (preprocessing + model)",
             "preprocessing": "`prepare_canvas` only", "model": "`predict` on the 28x28 only"}
    for run in p["runs"]:
        lat = run["latency_ms"]
        out += [
            f"**torch threads: {run['torch_threads']}** -- p50 {lat['predict_canvas']['p50']:.2f} "
            f"ms, p95 {lat['predict_canvas']['p95']:.2f} ms (target p50 < {p['target_p50_ms']} "
            f"ms: {'met' if run['within_target'] else 'not met'})",
            common.table(["latency (ms)", "p50", "p95", "p99", "mean"],
                         [[names[k], *(f"{v[q]:.3f}" for q in ("p50", "p95", "p99", "mean"))]
                          for k, v in lat.items()]),
            common.table(["batch of prepared 28x28", "images/s (median)", "images/s (best)",
                          "ms per batch"],
                         [[t["batch"], t["images_per_s_median"], t["images_per_s_best"],
                           f"{t['ms_per_batch_median']:.3f}"] for t in run["throughput"]]),
        ]
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = common.cli(__doc__, threads=False)  # measured with torch's default threads, then with 1
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="model checkpoint to time (default: an untrained reference MLP)")
    p.add_argument("--calls", type=common.positive_int, default=500,
                   help="timed calls per measurement")
    p.add_argument("--quick", action="store_true", help="tiny smoke run: checks, not numbers")
    args = p.parse_args(argv)
    vars(args).update(QUICK if args.quick else FULL)
    payload = run(args)
    return common.finish(payload, markdown(payload), args.json_out)


if __name__ == "__main__":
    sys.exit(common.run_main(main))
