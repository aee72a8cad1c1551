"""Shared pieces of the benchmark scripts: machine description, timing statistics,
peak-memory probes, data loading, tables and JSON output.

Every script prints a readable table and, with ``--json-out``, writes the same numbers
as JSON; ``run_all.py`` turns those JSON files into RESULTS.md. Nothing here asserts on
speed: the machine the numbers come from is usually shared and noisy, so each script
repeats its measurements and reports medians and minima rather than single runs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
NOISE_NOTE = (
    "Timings come from one process on a possibly shared machine: other jobs can slow any "
    "single run several-fold. Compare numbers only within one run (medians/minima of "
    "interleaved repeats), not across machines or days."
)


class BenchmarkError(Exception):
    """Bad input or a missing prerequisite; scripts print it and exit with status 2."""


# --------------------------------------------------------------------------- process setup


def quiet_lightning() -> None:
    """Silence Lightning's banner lines and the hints that do not apply to benchmarks
    (few DataLoader workers, log interval, no logger), so tables stay readable."""
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in (
        ".*does not have many workers.*",
        ".*log_every_n_steps.*",
        ".*smaller than the logging interval.*",
        ".*LightningModule.*has parameters that were not used.*",
        ".*You called `self.log.*",
        ".*GPU available.*",
        ".*Checkpoint directory.*exists and is not empty.*",
        ".*no `val_dataloader`.*",
        ".*LeafSpec.*is deprecated.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a script's ``main``: BenchmarkError -> message on stderr and exit status 2."""
    try:
        return main(argv)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads", type=positive_int, default=None, metavar="N",
        help="torch intra-op threads (default: torch's choice, usually the core count); "
        "1 gives steadier numbers on a busy shared machine",
    )


def set_threads(threads: int | None) -> int:
    """Apply ``--threads`` (None keeps torch's default); returns the count in effect."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def add_json_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json-out", type=Path, default=None, metavar="PATH",
        help="also write the results as JSON to PATH (run_all.py collects these)",
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from error
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def int_list(text: str) -> list[int]:
    """``"64,128,256"`` -> [64, 128, 256] (each > 0)."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers such as 64,128,256, got {text!r}"
        ) from error
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected numbers > 0, got {text!r}")
    return values


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """1/5/15-minute load averages: how busy the (shared) machine was around a run."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: printed by every script, recorded in RESULTS.md."""
    import pytorch_lightning as pl
    import torch

    total_mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total_mem = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "cpu_count": os.cpu_count(),
        "memory_gib": total_mem,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "lightning": pl.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": load_average(),
    }


def print_machine(info: dict[str, Any]) -> None:
    print(
        f"Machine: {info['cpu']}, {info['cores']} usable cores, torch {info['torch']} "
        f"({info['torch_threads']} threads), Lightning {info['lightning']}, "
        f"Python {info['python']}, {info['date']}"
    )
    if info.get("load_average"):
        load = ", ".join(f"{v:.2f}" for v in info["load_average"])
        print(f"Load average (1/5/15 min) when the run ended: {load} on {info['cores']} cores")
    print(f"Note: {NOISE_NOTE}")


# --------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call, on the monotonic high-resolution clock."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Median/min/max/mean of repeated timings (seconds). Median is the headline,
    min the least-disturbed run."""
    if not samples:
        raise ValueError("no timing samples")
    values = [float(s) for s in samples]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
        "n": len(values),
    }


def percentiles(samples: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` (linear interpolation, numpy's default)."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no timing samples")
    return {f"p{q:g}": float(np.percentile(arr, q)) for q in qs}


# --------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def rss_mib() -> float | None:
    """Resident set size now (MiB), from /proc/self/status; None off Linux."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def peak_rss_mib() -> float | None:
    """Peak resident set size (MiB) since start or since the last :func:`reset_peak_rss`."""
    kib = _status_kib("VmHWM")
    return None if kib is None else kib / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (write "5" to /proc/self/clear_refs, Linux
    >= 4.0), so the next :func:`peak_rss_mib` is the peak of the code in between.
    tracemalloc would miss torch's tensors (they bypass Python's allocator); this does not."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class PeakMemory:
    """``with PeakMemory() as mem: ...`` -> ``mem.delta_mib``: peak RSS during the block
    minus RSS at its start (None where /proc is unavailable or cannot be reset)."""

    def __enter__(self) -> PeakMemory:
        self.reset_ok = reset_peak_rss()
        self.start_mib = rss_mib()
        self.delta_mib: float | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        peak = peak_rss_mib()
        if self.reset_ok and peak is not None and self.start_mib is not None:
            self.delta_mib = max(0.0, peak - self.start_mib)


# --------------------------------------------------------------------------- data


def check_mnist_dir(path: Path | str) -> Path:
    """The folder must hold the four official MNIST files (they are never downloaded here)."""
    folder = Path(path).expanduser()
    missing = [name for name in MNIST_FILES if not (folder / name).is_file()]
    if missing:
        raise BenchmarkError(
            f"--mnist-dir {folder} lacks {', '.join(missing)}. Point it at a folder with the "
            "four official MNIST .gz files (e.g. the cache `python train.py data=mnist` fills, "
            "~/.cache/handwriting/mnist), or leave --mnist-dir out."
        )
    return folder


def default_mnist_dir() -> Path | None:
    """The MNIST cache the training code uses, when it is already filled; else None."""
    from handwriting.data.download import default_data_dir

    folder = default_data_dir("mnist")
    return folder if all((folder / name).is_file() for name in MNIST_FILES) else None


def load_data_config(name: str, mnist_dir: Path | None = None) -> Any:
    """The project's own data config (conf/data/<name>.yaml) as a data module, so the
    benchmarks split exactly as training does. MNIST is read from ``mnist_dir`` only."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    path = ROOT / "conf" / "data" / f"{name}.yaml"
    if not path.is_file():
        raise BenchmarkError(f"{path} is missing: run the benchmarks from a project checkout")
    cfg = OmegaConf.load(path)
    if name == "mnist":
        if mnist_dir is None:
            raise BenchmarkError("--data mnist needs --mnist-dir (a folder with the MNIST files)")
        cfg.source.cache_dir = str(check_mnist_dir(mnist_dir))
        cfg.source.download = False
    datamodule = instantiate(cfg, _convert_="all")
    datamodule.setup("fit")
    return datamodule


class WholePoolAsTrain:
    """A source whose training pool (optionally its first ``limit`` images) is entirely the
    training split: benchmarks then train on exactly N images, through the same data module
    and batch indexing as training. Val/test are the source's own or one placeholder image
    (the data module insists on non-empty ones; benchmarks never use them)."""

    def __init__(self, source: Any, limit: int | None = None) -> None:
        self.source = source
        self.limit = limit

    def load(self) -> Any:
        from handwriting.data.types import SourceData

        data = self.source.load()
        train = data.train
        if self.limit is not None:
            if self.limit > len(train):
                raise BenchmarkError(
                    f"asked for {self.limit:,} training images but {data.name} has {len(train):,}"
                )
            train = train.subset(np.arange(self.limit))
        one = train.subset(np.arange(1))
        return SourceData(data.name, data.classes, train=train,
                          val=data.val if data.val is not None else one,
                          test=data.test if data.test is not None else one)


class InMemorySource:
    """Already-loaded images as a source (no file reading inside a measured block)."""

    def __init__(self, name: str, images: np.ndarray, labels: np.ndarray) -> None:
        self.name, self.images, self.labels = name, images, labels

    def load(self) -> Any:
        from handwriting.data.types import LabeledImages, SourceData

        return SourceData(self.name, tuple(str(d) for d in range(10)),
                          train=LabeledImages(self.images, self.labels))


def synthetic_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 "digits" and labels: same shapes and dtypes as MNIST, for timing and
    memory only (the MLP's cost does not depend on pixel values)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    return images, rng.integers(0, 10, size=n).astype(np.int64)


# --------------------------------------------------------------------------- output


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers for tables: thousands separators for ints, ``digits`` significant-ish decimals."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits - 1}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], markdown: bool = False) -> str:
    """A plain-text (aligned) or GitHub-markdown table; cells go through :func:`fmt`."""
    cells = [[fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(lines)
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """Plain JSON types; NaN/inf (e.g. the accuracy of an empty bucket) become null, since
    JSON has no NaN and a reader must not mistake them for numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus nothing else) as pretty JSON; no-op when ``path`` is None."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n")
    print(f"JSON written to {path}")
