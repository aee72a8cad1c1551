"""How one plain PyTorch training epoch scales: epoch time and peak memory (rise of the RSS
high-water mark, so torch's tensors count) versus the number of training images (5k, 10k,
60k) and the hidden width h of 784-h-h-10 (64 ... 1024), with a two-panel plot. Images are
official MNIST with ``--mnist-dir``, else synthetic (an MLP's cost ignores pixel values).

    python -m benchmarks.scaling --mnist-dir /path/to/mnist --plot benchmarks/scaling.png
"""

import argparse
import ctypes
import gc
import os
import sys
from pathlib import Path
from typing import Any, Self

import numpy as np

from benchmarks import common
from benchmarks.train_speed import BATCH, SEED, mnist_train, plain_epochs
from handwriting.model import build_mlp

# Sizes ascend, so a freed larger block cannot hide a smaller one's peak. The width sweep
# runs on hidden_data_size images, the size sweep at width BASE_HIDDEN.
FULL = {"data_sizes": [5000, 10000, 60000], "hidden_sizes": [64, 128, 256, 512, 1024],
        "hidden_data_size": 10000, "repeats": 3, "warmup": 1}
QUICK = {"data_sizes": [256, 512], "hidden_sizes": [8, 16], "hidden_data_size": 256,
         "repeats": 1, "warmup": 0}
BASE_HIDDEN = 128
DEFAULT_PLOT = common.ROOT / "benchmarks" / "scaling.png"
QUICK_PLOT = common.ROOT / "outputs" / "bench" / "scaling_quick.png"  # outputs/ is git-ignored


def _status_mib(field: str) -> float | None:
    line = common.proc_field("/proc/self/status", field + ":")
    return None if line is None else int(line.split()[1]) / 1024


class PeakMemory:
    """``with PeakMemory() as mem: ...`` -> ``mem.delta_mib``: peak RSS during the block minus
    RSS at its start. The kernel's high-water mark is reset through /proc/self/clear_refs
    (Linux), so torch's tensors count, which tracemalloc would miss; None elsewhere."""

    def __enter__(self) -> Self:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.reset_ok = True
        except OSError:
            self.reset_ok = False
        self.start_mib, self.delta_mib = _status_mib("VmRSS"), None
        return self

    def __exit__(self, *exc: object) -> None:
        peak = _status_mib("VmHWM")
        if self.reset_ok and peak is not None and self.start_mib is not None:
            self.delta_mib = max(0.0, peak - self.start_mib)


def release_free_memory() -> bool:
    """Hand freed heap back to the OS (glibc ``malloc_trim``), so a point's allocations show
    in its RSS peak instead of reusing pages an earlier point left; False without glibc."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True


def run(args: argparse.Namespace) -> dict[str, Any]:
    threads = common.set_threads(args.threads)
    pool_size = max(*args.data_sizes, args.hidden_data_size)
    if args.mnist_dir is None:
        rng = np.random.default_rng(SEED)
        images = rng.integers(0, 256, size=(pool_size, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=pool_size).astype(np.int64)
        data_desc = "synthetic random uint8 images (no --mnist-dir)"
    else:
        train = mnist_train(args.mnist_dir)
        images, labels, data_desc = train.images, train.labels, "official MNIST training images"

    def first(n: int) -> Any:  # copied, as a data source's subset is, so the peak counts it
        return common.train_only_datamodule(images[:n].copy(), labels[:n].copy(), BATCH)

    def measure(n: int, width: int, datamodule: Any = None) -> dict[str, Any]:
        release_free_memory()
        with PeakMemory() as mem:  # building the data module here counts it too
            datamodule = first(n) if datamodule is None else datamodule
            seconds = plain_epochs(datamodule, [width, width], args.warmup + args.repeats)
        seconds = seconds[args.warmup:]  # warm-up epochs are not measured
        stats = common.summarize(seconds)
        params = sum(p.numel() for p in build_mlp(784, [width, width], 10).parameters())
        return {"train_size": n, "hidden_sizes": [width, width], "parameters": params,
                **{f"epoch_s_{key}": stats[key] for key in ("median", "min", "max")},
                "samples": seconds, "samples_per_s": n / stats["median"],
                "peak_rss_delta_mib": mem.delta_mib,
                "data_tensor_mib": n * (784 * 4 + 8) / 2**20}  # float32 images, int64 labels

    trimmed = release_free_memory()
    by_size = [measure(n, BASE_HIDDEN) for n in args.data_sizes]
    loaded = first(args.hidden_data_size)  # so the width peaks are model, Adam, activations
    by_hidden = [measure(args.hidden_data_size, h, loaded) for h in args.hidden_sizes]
    plot = make_plot(by_size, by_hidden, args.plot, data_desc, threads)
    return {
        "benchmark": "scaling", "machine": common.machine_info(),
        "config": {
            "data": data_desc, "synthetic": args.mnist_dir is None,
            "data_sizes": args.data_sizes, "base_hidden_sizes": [BASE_HIDDEN, BASE_HIDDEN],
            "hidden_sizes": args.hidden_sizes, "hidden_data_size": args.hidden_data_size,
            "batch_size": BATCH, "repeats": args.repeats, "warmup": args.warmup,
            "torch_threads": threads, "malloc_trim": trimmed,
        },
        "by_data_size": by_size, "by_hidden_size": by_hidden, "plot": str(plot),
        "note": common.NOISE_NOTE,
    }


def make_plot(by_size: list[dict[str, Any]], by_hidden: list[dict[str, Any]], path: Path,
              data_desc: str, threads: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    panels = [(axes[0], by_size, False, "training images",
               f"784-{BASE_HIDDEN}-{BASE_HIDDEN}-10, vs data size"),
              (axes[1], by_hidden, True, "hidden width h of 784-h-h-10",
               f"{by_hidden[0]['train_size']:,} images, vs hidden width")]
    for ax, points, by_width, xlabel, title in panels:
        xs = [q["hidden_sizes"][0] if by_width else q["train_size"] for q in points]
        med, low, high = (np.array([q[f"epoch_s_{key}"] for q in points])
                          for key in ("median", "min", "max"))
        ax.errorbar(xs, med, yerr=[med - low, high - med], marker="o", color="tab:blue",
                    capsize=3, label="epoch time (median, min-max)")
        ax.set_xscale("log", base=2 if by_width else 10)
        ax.set_xticks(xs, [f"{x:,}" for x in xs])
        ax.minorticks_off()
        ax.set(xlabel=f"{xlabel} (log scale)", title=title, ylim=(0, None))
        ax.set_ylabel("seconds per epoch", color="tab:blue")
        twin = ax.twinx()
        peaks = np.array([q["peak_rss_delta_mib"] for q in points], dtype=float)  # None: NaN
        twin.plot(xs, peaks, marker="s", linestyle="--", color="tab:red", label="peak RSS rise")
        if not by_width:
            twin.plot(xs, [q["data_tensor_mib"] for q in points], linestyle=":", color="grey",
                      label="float32 images alone")
        twin.set_ylabel("peak RSS rise, MiB", color="tab:red")
        twin.set_ylim(bottom=0)
        handles = [h for a in (ax, twin) for h in a.get_legend_handles_labels()[0]]
        ax.legend(handles=handles, loc="upper left", fontsize=8)
    fig.suptitle(f"Plain PyTorch loop, one epoch, batch {BATCH}, Adam; {data_desc}; "
                 f"{threads} torch thread(s)", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def headline(p: dict[str, Any]) -> str:
    big = p["by_data_size"][-1]
    return (f"plain epoch, {big['train_size']:,} images, 784-128-128-10, "
            f"{p['config']['torch_threads']} thread(s): {big['epoch_s_median']:.2f} s, peak RSS "
            f"rise {common.fmt(big['peak_rss_delta_mib'])} MiB (float32 data alone "
            f"{big['data_tensor_mib']:.0f} MiB)")


def markdown(p: dict[str, Any], relative_to: Path | None = None) -> str:
    """The tables; the plot linked relative to ``relative_to`` (the markdown's folder)."""
    cfg = p["config"]
    headers = ["images", "hidden", "parameters", "epoch s (median)", "min", "samples/s",
               "peak RSS rise MiB", "float32 data MiB"]

    def rows(points: list[dict[str, Any]]) -> list[list[Any]]:
        return [[q["train_size"], "x".join(map(str, q["hidden_sizes"])), q["parameters"],
                 f"{q['epoch_s_median']:.3f}", f"{q['epoch_s_min']:.3f}", q["samples_per_s"],
                 common.fmt(q["peak_rss_delta_mib"]), f"{q['data_tensor_mib']:.1f}"]
                for q in points]

    out = [
        f"Plain PyTorch loop, one epoch, batch {cfg['batch_size']}, Adam; {cfg['data']}; "
        f"{cfg['repeats']} repeats after {cfg['warmup']} warm-up; **torch threads: "
        f"{cfg['torch_threads']}**. Peak RSS rise = resident-memory high-water mark over the "
        "block minus the RSS at its start (kernel counter reset per point).",
        "By data size (building the data module from uint8 images + model + epochs):",
        common.table(headers, rows(p["by_data_size"])),
        "By hidden width h of 784-h-h-10 (data already in memory: model, Adam state, "
        "activations):",
        common.table(headers, rows(p["by_hidden_size"])),
    ]
    plot = common.ROOT / p["plot"]  # an absolute path stays as it is
    link = os.path.relpath(plot, relative_to) if relative_to else plot
    out.append(f"![epoch time and peak memory vs data size and hidden width]({link})")
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = common.cli(__doc__)
    p.add_argument("--mnist-dir", type=Path, default=None,
                   help="folder with the official MNIST .gz files (default: synthetic images)")
    p.add_argument("--plot", type=Path, default=None,
                   help="where to save the two-panel plot (default: benchmarks/scaling.png; "
                   f"with --quick, {QUICK_PLOT}, so a smoke run never replaces the real plot)")
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run (sizes 256/512, widths 8/16, 1 repeat): checks, not "
                   "numbers")
    args = p.parse_args(argv)
    vars(args).update(QUICK if args.quick else FULL)
    args.plot = args.plot or (QUICK_PLOT if args.quick else DEFAULT_PLOT)
    payload = run(args)
    return common.finish(payload, markdown(payload), args.json_out)


if __name__ == "__main__":
    sys.exit(common.run_main(main))
