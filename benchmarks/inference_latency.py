"""How long the app waits for an answer: one drawing-canvas image (RGBA 280x280 uint8)
through ``Predictor.predict_canvas`` -- preprocessing included -- measured call by call
in-process (p50/p95/p99 after a warm-up), split into its preprocessing and model parts,
plus batch throughput of the model alone on prepared 28x28 images.

Latency does not depend on the weights, only on the architecture, so without
``--checkpoint`` an untrained reference MLP (784-128-128-10) is used and the output says so.

    python -m benchmarks.inference_latency
    python -m benchmarks.inference_latency --checkpoint models/promoted/model.ckpt
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.common import (
    NOISE_NOTE,
    cli,
    finish,
    load_predictor,
    machine_info,
    percentiles,
    positive_int,
    run_main,
    summarize,
    table,
)
from handwriting.data.embedded import EmbeddedMNIST
from handwriting.inference import Predictor
from handwriting.model import MLPClassifier
from handwriting.preprocessing import prepare_canvas

TARGET_P50_MS = 5.0
# Unmeasured calls first, throughput batch sizes, seconds of batches per repeat, repeats.
WARMUP, BATCH_SIZES, MIN_TIME, REPEATS = 50, [1, 64, 1024], 0.5, 3


def model(checkpoint: Path | None) -> tuple[Predictor, str]:
    """(predictor, description): the checkpoint's model, else an untrained reference MLP
    (latency depends on the architecture, not on the weights)."""
    if checkpoint is not None:
        return load_predictor(checkpoint)
    torch.manual_seed(0)
    return Predictor(MLPClassifier()), "untrained reference MLP 784-128-128-10 (no --checkpoint)"


# The packaged training digit 0 (a 7) redrawn as an app canvas drawing: round pen 18 px,
# 60 % of the canvas, seed 0, by the since-retired benchmarks/strokes.py (see README.md).
CANVAS = Path(__file__).with_name("inference_canvas.png")


def make_canvas() -> tuple[np.ndarray, str]:
    """A canvas drawing like the app produces: a real digit redrawn as round-pen strokes."""
    canvas = np.asarray(Image.open(CANVAS).convert("RGBA"))
    return canvas, "a real digit redrawn as canvas strokes (benchmarks/inference_canvas.png)"


def time_calls(fn: Any, calls: int, warmup: int) -> list[float]:
    """Per-call wall time in ms of ``fn()``, ``warmup`` unmeasured calls first."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - start) / 1e6)
    return out


def throughput(predictor: Predictor, images: np.ndarray, batch: int, min_time: float,
               repeats: int) -> dict[str, float]:
    """Images/s of ``predictor.probabilities`` on batches of ``batch`` prepared images:
    each repeat runs whole batches for at least ``min_time`` seconds."""
    reps = -(-batch // len(images))
    data = np.concatenate([images] * reps)[:batch]
    predictor.probabilities(data)  # warm-up
    rates = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:
            predictor.probabilities(data)
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time and n >= 3:
                break
        rates.append(n * batch / elapsed)
    stats = summarize(rates)
    return {"batch": batch, "images_per_s_median": stats["median"],
            "images_per_s_best": stats["max"], "ms_per_batch_median": batch / stats["median"] * 1000}


def measure(predictor: Predictor, canvas: np.ndarray, images: np.ndarray, threads: int,
            args: argparse.Namespace) -> dict[str, Any]:
    """Latency percentiles and batch throughput with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    prepared = prepare_canvas(canvas)
    latency = {
        "predict_canvas": time_calls(lambda: predictor.predict_canvas(canvas), args.calls, args.warmup),
        "preprocessing": time_calls(lambda: prepare_canvas(canvas), args.calls, args.warmup),
        "model": time_calls(lambda: predictor.predict(prepared), args.calls, args.warmup),
    }
    summary = {
        name: {**percentiles(samples), "mean": float(np.mean(samples)),
               "min": float(np.min(samples)), "max": float(np.max(samples))}
        for name, samples in latency.items()
    }
    batches = [throughput(predictor, images, b, args.min_time, args.repeats) for b in args.batch_sizes]
    return {
        "torch_threads": torch.get_num_threads(),
        "latency_ms": summary,
        "throughput": batches,
        "within_target": summary["predict_canvas"]["p50"] < TARGET_P50_MS,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    default_threads = torch.get_num_threads()
    settings = list(dict.fromkeys([default_threads, 1]))
    predictor, model_desc = model(args.checkpoint)
    data = EmbeddedMNIST().load().train
    canvas, canvas_desc = make_canvas()
    images = data.images[: max(args.batch_sizes)].astype(np.float32) / 255.0
    runs = [measure(predictor, canvas, images, threads, args) for threads in settings]
    torch.set_num_threads(default_threads)
    prediction = predictor.predict_canvas(canvas)
    return {
        "benchmark": "inference_latency",
        "machine": machine_info(),
        "config": {
            "model": model_desc, "trained": args.checkpoint is not None,
            "canvas": canvas_desc, "canvas_shape": list(canvas.shape),
            "digit_label": int(data.labels[0]),
            "calls": args.calls, "warmup": args.warmup, "default_torch_threads": default_threads,
            "thread_settings": settings, "batch_sizes": args.batch_sizes,
            "min_time_s": args.min_time, "repeats": args.repeats,
        },
        "prediction": {"label": prediction.label, "confidence": prediction.confidence},
        "runs": runs,
        # Headline: the first setting, torch's default thread count.
        "latency_ms": runs[0]["latency_ms"],
        "throughput": runs[0]["throughput"],
        "target_p50_ms": TARGET_P50_MS,
        "within_target": runs[0]["within_target"],
        "note": NOISE_NOTE,
    }


def headline(p: dict[str, Any]) -> str:
    default = p["config"].get("default_torch_threads")
    return "; ".join(
        f"canvas -> prediction latency, {run['torch_threads']} thread(s)"
        f"{' (torch default)' if run['torch_threads'] == default else ''}: p50 "
        f"{run['latency_ms']['predict_canvas']['p50']:.2f} ms, p95 "
        f"{run['latency_ms']['predict_canvas']['p95']:.2f} ms (target p50 < {p['target_p50_ms']:g} ms)"
        for run in p["runs"])


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
            table(["latency (ms)", "p50", "p95", "p99", "mean"],
                  [[names[k], *(f"{v[q]:.3f}" for q in ("p50", "p95", "p99", "mean"))]
                   for k, v in lat.items()]),
            table(["batch of prepared 28x28", "images/s (median)", "images/s (best)",
                   "ms per batch"],
                  [[t["batch"], t["images_per_s_median"], t["images_per_s_best"],
                    f"{t['ms_per_batch_median']:.3f}"] for t in run["throughput"]]),
        ]
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = cli(__doc__, threads=False)  # measured with torch's default thread count, then with 1
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="model checkpoint to time (default: an untrained reference MLP)")
    p.add_argument("--calls", type=positive_int, default=500, help="timed calls per measurement")
    p.add_argument("--quick", action="store_true", help="tiny smoke run: checks, not numbers")
    args = p.parse_args(argv)
    args.warmup, args.min_time, args.repeats, args.batch_sizes = WARMUP, MIN_TIME, REPEATS, BATCH_SIZES
    if args.quick:
        args.calls, args.warmup, args.min_time, args.repeats = 20, 2, 0.01, 1
        args.batch_sizes = [1, 8]
    payload = run(args)
    return finish(payload, markdown(payload), args.json_out)


if __name__ == "__main__":
    sys.exit(run_main(main))
