"""How one training epoch of the plain PyTorch loop scales: epoch time and peak memory
versus the number of training images (default 5k, 10k, 60k) and versus the hidden width
of the two-hidden-layer MLP (64 ... 1024), with one two-panel plot.

Images are the official MNIST training set when ``--mnist-dir`` is given, else random
synthetic tensors of the same shape (an MLP's cost does not depend on pixel values).
Peak memory is the rise of the process's resident set (RSS high-water mark, reset through
/proc/self/clear_refs) over the block: data tensors, model, optimizer state and
activations, which tracemalloc would miss because torch allocates outside Python.

    python -m benchmarks.scaling --mnist-dir /path/to/mnist --plot benchmarks/scaling.png
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.common import (
    NOISE_NOTE,
    ROOT,
    PeakMemory,
    check_mnist_dir,
    cli,
    finish,
    fmt,
    machine_info,
    run_main,
    set_threads,
    summarize,
    table,
    train_only_datamodule,
)
from handwriting.model import build_mlp

# Training-set sizes (at width 128), hidden widths h of 784-h-h-10 (on 10k images), batch,
# measured epochs after warm-up ones, seed.
DATA_SIZES, HIDDEN_SIZES, HIDDEN_DATA_SIZE, BASE_HIDDEN = [5000, 10000, 60000], [64, 128, 256, 512, 1024], 10000, 128
BATCH, REPEATS, WARMUP, SEED = 128, 3, 1, 0


def release_free_memory() -> bool:
    """Collect garbage and hand freed heap memory back to the OS (glibc ``malloc_trim``),
    so the next measurement starts from the memory really in use and its own allocations
    show up in the RSS peak instead of silently reusing pages an earlier one left behind.
    (Unlike fixing malloc's thresholds, this leaves the timed loop's allocations alone.)"""
    gc.collect()
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0)) or True
    except (OSError, AttributeError):
        return False


def load_pool(mnist_dir: Path | None, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The first ``size`` official training images, else random uint8 "digits" of the same
    shape (timing and memory only: the MLP's cost does not depend on pixel values)."""
    if mnist_dir is None:
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 256, size=(size, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=size).astype(np.int64)
        return images, labels, "synthetic random uint8 images (no --mnist-dir)"
    from handwriting.data.mnist import MNIST

    train = MNIST(cache_dir=str(check_mnist_dir(mnist_dir)), download=False).load().train
    return train.images[:size], train.labels[:size], "official MNIST training images"


def datamodule_for(images: np.ndarray, labels: np.ndarray, n: int, batch: int) -> Any:
    """The first ``n`` images as the training split, copied (as a data source's subset is)
    inside the measured block, so the peak memory counts them."""
    index = np.arange(n)
    return train_only_datamodule(images[index], labels[index], batch)


def epoch_times(datamodule: Any, hidden: list[int], args: argparse.Namespace) -> list[float]:
    """Seconds per epoch of the plain loop (fresh seeded model; warm-up epochs not returned)."""
    torch.manual_seed(args.seed)
    net = build_mlp(784, hidden, 10)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def epoch() -> float:
        start = time.perf_counter()
        for x, y in datamodule.train_dataloader():
            optimizer.zero_grad()
            loss_fn(net(x), y).backward()
            optimizer.step()
        return time.perf_counter() - start

    times = [epoch() for _ in range(args.warmup + args.repeats)]
    return times[args.warmup:]


def point(n: int, hidden: list[int], seconds: list[float], peak: float | None) -> dict[str, Any]:
    stats = summarize(seconds)
    params = sum(p.numel() for p in build_mlp(784, hidden, 10).parameters())
    return {
        "train_size": n, "hidden_sizes": hidden, "parameters": params,
        "epoch_s_median": stats["median"], "epoch_s_min": stats["min"], "epoch_s_max": stats["max"],
        "samples": seconds, "samples_per_s": n / stats["median"],
        "peak_rss_delta_mib": peak,
        # What the float32 images + int64 labels alone take, for comparison with the peak.
        "data_tensor_mib": n * (784 * 4 + 8) / 2**20,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    threads = set_threads(args.threads)
    pool_size = max(max(args.data_sizes), args.hidden_data_size)
    images, labels, data_desc = load_pool(args.mnist_dir, pool_size, args.seed)
    base_hidden = [args.base_hidden, args.base_hidden]

    trimmed = False
    by_size = []
    for n in sorted(args.data_sizes):  # ascending: a freed larger block cannot mask a peak
        trimmed = release_free_memory()
        with PeakMemory() as mem:
            datamodule = datamodule_for(images, labels, n, args.batch_size)
            seconds = epoch_times(datamodule, base_hidden, args)
        by_size.append(point(n, base_hidden, seconds, mem.delta_mib))
        del datamodule

    datamodule = datamodule_for(images, labels, args.hidden_data_size, args.batch_size)
    by_hidden = []
    for width in sorted(args.hidden_sizes):
        trimmed = release_free_memory()
        with PeakMemory() as mem:  # data already loaded: model, Adam state, activations
            seconds = epoch_times(datamodule, [width, width], args)
        by_hidden.append(point(args.hidden_data_size, [width, width], seconds, mem.delta_mib))

    plot = None
    if args.plot is not None:
        plot = str(make_plot(by_size, by_hidden, args.plot, data_desc, threads))
    return {
        "benchmark": "scaling",
        "machine": machine_info(),
        "config": {
            "data": data_desc, "synthetic": args.mnist_dir is None,
            "data_sizes": sorted(args.data_sizes), "base_hidden_sizes": base_hidden,
            "hidden_sizes": sorted(args.hidden_sizes), "hidden_data_size": args.hidden_data_size,
            "batch_size": args.batch_size, "repeats": args.repeats, "warmup": args.warmup,
            "torch_threads": threads, "malloc_trim": trimmed,
        },
        "by_data_size": by_size,
        "by_hidden_size": by_hidden,
        "plot": plot,
        "note": NOISE_NOTE,
    }


def make_plot(by_size: list[dict[str, Any]], by_hidden: list[dict[str, Any]], path: Path,
              data_desc: str, threads: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    panels = [
        (axes[0], by_size, "train_size", "training images (log scale)",
         f"784-{by_size[0]['hidden_sizes'][0]}-{by_size[0]['hidden_sizes'][1]}-10, vs data size"),
        (axes[1], by_hidden, "hidden_sizes", "hidden width h of 784-h-h-10 (log scale)",
         f"{by_hidden[0]['train_size']:,} images, vs hidden width"),
    ]
    for ax, points, key, xlabel, title in panels:
        xs = [p[key][0] if key == "hidden_sizes" else p[key] for p in points]
        med = [p["epoch_s_median"] for p in points]
        low = [p["epoch_s_median"] - p["epoch_s_min"] for p in points]
        high = [p["epoch_s_max"] - p["epoch_s_median"] for p in points]
        ax.errorbar(xs, med, yerr=[low, high], marker="o", color="tab:blue", capsize=3,
                    label="epoch time (median, min-max)")
        ax.set_xscale("log", base=2 if key == "hidden_sizes" else 10)
        ax.set_xticks(xs, [f"{x:,}" for x in xs])
        ax.minorticks_off()
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds per epoch", color="tab:blue")
        ax.set_ylim(bottom=0)
        ax.set_title(title)
        twin = ax.twinx()
        mem = [p["peak_rss_delta_mib"] if p["peak_rss_delta_mib"] is not None else np.nan
               for p in points]
        twin.plot(xs, mem, marker="s", linestyle="--", color="tab:red", label="peak RSS rise")
        if key == "train_size":
            twin.plot(xs, [p["data_tensor_mib"] for p in points], linestyle=":", color="grey",
                      label="float32 images alone")
        twin.set_ylabel("peak RSS rise, MiB", color="tab:red")
        twin.set_ylim(bottom=0)
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    fig.suptitle(f"Plain PyTorch loop, one epoch, batch 128, Adam; {data_desc}; "
                 f"{threads} torch thread(s)", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def headline(p: dict[str, Any]) -> str:
    big = p["by_data_size"][-1]
    return (f"plain epoch, {big['train_size']:,} images, 784-128-128-10, "
            f"{p['config']['torch_threads']} thread(s): {big['epoch_s_median']:.2f} s, peak RSS "
            f"rise {fmt(big['peak_rss_delta_mib'])} MiB (float32 data alone "
            f"{big['data_tensor_mib']:.0f} MiB)")


def markdown(p: dict[str, Any], relative_to: Path | None = None) -> str:
    """The tables; the plot linked relative to ``relative_to`` (the markdown's folder)."""
    cfg = p["config"]
    headers = ["images", "hidden", "parameters", "epoch s (median)", "min", "samples/s",
               "peak RSS rise MiB", "float32 data MiB"]

    def rows(points: list[dict[str, Any]]) -> list[list[Any]]:
        return [[q["train_size"], "x".join(map(str, q["hidden_sizes"])), q["parameters"],
                 f"{q['epoch_s_median']:.3f}", f"{q['epoch_s_min']:.3f}", q["samples_per_s"],
                 fmt(q["peak_rss_delta_mib"]), f"{q['data_tensor_mib']:.1f}"] for q in points]

    out = [
        f"Plain PyTorch loop, one epoch, batch {cfg['batch_size']}, Adam; {cfg['data']}; "
        f"{cfg['repeats']} repeats after {cfg['warmup']} warm-up; **torch threads: "
        f"{cfg['torch_threads']}**. Peak RSS rise = resident-memory high-water mark over the "
        "block minus the RSS at its start (kernel counter reset per point).",
        "By data size (building the data module from uint8 images + model + epochs):",
        table(headers, rows(p["by_data_size"])),
        "By hidden width h of 784-h-h-10 (data already in memory: model, Adam state, "
        "activations):",
        table(headers, rows(p["by_hidden_size"])),
    ]
    if p.get("plot"):
        plot = Path(p["plot"])
        plot = plot if plot.is_absolute() else ROOT / plot
        link = os.path.relpath(plot, relative_to) if relative_to else plot
        out.append(f"![epoch time and peak memory vs data size and hidden width]({link})")
    return "\n\n".join(out)


DEFAULT_PLOT = ROOT / "benchmarks" / "scaling.png"
QUICK_PLOT = ROOT / "outputs" / "bench" / "scaling_quick.png"  # outputs/ is git-ignored


def main(argv: list[str] | None = None) -> int:
    p = cli(__doc__)
    p.add_argument("--mnist-dir", type=Path, default=None,
                   help="folder with the official MNIST .gz files (default: synthetic images)")
    p.add_argument("--plot", type=Path, default=DEFAULT_PLOT,
                   help="where to save the two-panel plot (default: benchmarks/scaling.png; "
                   f"with --quick, {QUICK_PLOT}, so a smoke run never replaces the real plot)")
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run (sizes 256/512, widths 8/16, 1 repeat): checks, not numbers")
    args = p.parse_args(argv)
    args.data_sizes, args.hidden_sizes, args.hidden_data_size = DATA_SIZES, HIDDEN_SIZES, HIDDEN_DATA_SIZE
    args.base_hidden, args.batch_size, args.repeats, args.warmup, args.seed = (
        BASE_HIDDEN, BATCH, REPEATS, WARMUP, SEED)
    if args.quick:
        args.data_sizes, args.hidden_sizes, args.hidden_data_size = [256, 512], [8, 16], 256
        args.repeats, args.warmup = 1, 0
        if args.plot == DEFAULT_PLOT:
            args.plot = QUICK_PLOT
    payload = run(args)
    return finish(payload, markdown(payload), args.json_out)


if __name__ == "__main__":
    sys.exit(run_main(main))
