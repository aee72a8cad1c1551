"""What every benchmark script shares: the machine it ran on, timing statistics, /proc
fields, the project's own data configs, markdown tables and JSON output.

A script prints its markdown and, with ``--json-out``, writes the numbers behind it; run as
``python -m benchmarks.NAME`` from the project root. Nothing here asserts on speed: the
machine is usually shared and noisy, so scripts repeat and report medians and minima.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
NOISE_NOTE = (
    "Timings come from one process on a possibly shared machine: other jobs can slow any "
    "single run several-fold. Compare numbers only within one run (medians/minima of "
    "interleaved repeats), not across machines or days."
)


class BenchmarkError(Exception):
    """Bad input or a missing prerequisite; scripts print it and exit with status 2."""


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a script's ``main``: BenchmarkError -> message on stderr and exit status 2."""
    try:
        return main(argv)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def quiet_lightning() -> None:
    """Silence Lightning's banners and hints that do not apply here, so tables stay readable."""
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytorch_lightning|lightning_fabric|torchmetrics")


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def cli(doc: str | None, threads: bool = True, json_out: bool = True) -> argparse.ArgumentParser:
    """A script's parser: its docstring as ``--help``, ``--json-out PATH`` (run_all keeps these)
    and, unless the script sets threads itself, ``--threads N`` (1 is steadier when busy)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if threads:
        p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                       help="torch intra-op threads (default: torch's choice)")
    if json_out:
        p.add_argument("--json-out", type=Path, default=None, metavar="PATH",
                       help="also write the numbers as JSON to PATH")
    return p


def add_pendigits(p: argparse.ArgumentParser) -> None:
    """Where the pen digits are and how many writers are held out (as in training)."""
    p.add_argument("--pendigits-cache", default=None, help="folder with pendigits-orig.tra")
    p.add_argument("--unipen-file", default=None, help="your own UNIPEN file instead of UCI's")
    p.add_argument("--val-writers", type=positive_int, default=4)
    p.add_argument("--test-writers", type=positive_int, default=6)


def finish(payload: dict[str, Any], text: str, json_out: Path | None) -> int:
    """Print the markdown, write the JSON (with ``--json-out``); exit status 0."""
    print(text)
    write_json(json_out, payload)
    return 0


def set_threads(threads: int | None) -> int:
    """Apply ``--threads`` (None keeps torch's default); returns the count in effect."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def load_average() -> list[float] | None:
    """1/5/15-minute load averages: how busy the (shared) machine was around a run."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: recorded in every JSON and in RESULTS.md."""
    import pytorch_lightning as pl
    import torch

    cpu, memory = proc_field("/proc/cpuinfo", "model name"), proc_field("/proc/meminfo", "MemTotal")
    return {
        "cpu": cpu.split(":", 1)[1].strip() if cpu else platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(),
        "memory_gib": round(int(memory.split()[1]) / 1024**2, 1) if memory else None,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "lightning": pl.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": load_average(),
    }


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Median (the headline), min (the least disturbed run), max, mean of repeated timings."""
    values = [float(s) for s in samples]
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "mean": statistics.fmean(values), "n": len(values)}


def percentiles(samples: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` (linear interpolation, numpy's default)."""
    return {f"p{q:g}": float(np.percentile(np.asarray(samples, dtype=np.float64), q)) for q in qs}


def timed_map(fn: Callable[[Any], Any], items: Sequence[Any]) -> tuple[list[Any], list[float]]:
    """(``fn`` of each item, in order; milliseconds each call took)."""
    results, ms = [], []
    for item in items:
        start = time.perf_counter()
        results.append(fn(item))
        ms.append((time.perf_counter() - start) * 1000)
    return results, ms


def proc_field(path: str, key: str) -> str | None:
    """The first line of a /proc file starting with ``key`` (None where there is none)."""
    try:
        return next(x for x in Path(path).read_text().splitlines() if x.startswith(key))
    except (OSError, StopIteration):
        return None


def check_mnist_dir(path: Path | str) -> Path:
    """The folder must hold the four official MNIST files (benchmarks never download)."""
    folder = Path(path).expanduser()
    missing = [name for name in MNIST_FILES if not (folder / name).is_file()]
    if missing:
        raise BenchmarkError(
            f"--mnist-dir {folder} lacks {', '.join(missing)}. Point it at a folder with the "
            "four official MNIST .gz files (e.g. the cache `python train.py data=mnist` fills, "
            "~/.cache/handwriting/mnist), or leave --mnist-dir out.")
    return folder


def load_data_config(name: str) -> Any:
    """The project's own conf/data/<name>.yaml as a set-up data module, so benchmarks split
    exactly as training does."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    datamodule = instantiate(OmegaConf.load(ROOT / "conf" / "data" / f"{name}.yaml"),
                             _convert_="all")
    datamodule.setup("fit")
    return datamodule


def load_predictor(path: Path | str | None) -> tuple[Any, str]:
    """(predictor, "PATH (MLP 784-...-10, trained on ..., N epochs, val acc ...)") of a
    checkpoint, the promoted model when ``path`` is None; unloadable: a BenchmarkError."""
    from handwriting.inference import ModelLoadError, Predictor
    from handwriting.model_loading import promoted_model_path

    path = Path(path) if path is not None else promoted_model_path()
    try:
        predictor = Predictor.from_checkpoint(path)
    except ModelLoadError as error:  # includes "no such file"
        raise BenchmarkError(str(error)) from error
    hidden = "-".join(str(h) for h in predictor.model.hparams["hidden_sizes"])
    meta = predictor.metadata or {}
    metrics, parts = meta.get("metrics") or {}, [f"MLP 784-{hidden}-{len(predictor.classes)}"]
    if meta.get("data_source"):
        parts.append(f"trained on {str(meta['data_source']).rsplit('.', 1)[-1]}")
    if "epochs" in metrics:
        parts.append(f"{metrics['epochs']:.0f} epochs")
    if "val/acc" in metrics:
        parts.append(f"val acc {metrics['val/acc']:.4f}")
    return predictor, f"{path} ({', '.join(parts)})"


def train_only_datamodule(images: np.ndarray, labels: np.ndarray, batch_size: int) -> Any:
    """A data module whose training split is exactly these images (benchmarks then train on
    N images through the same batch-indexed loader as training). Val/test are one image:
    the data module insists on non-empty ones, benchmarks never use them."""
    from handwriting.data.datamodule import HandwritingDataModule
    from handwriting.data.types import LabeledImages, SourceData

    class Pool:
        name = "pool"

        def load(self) -> SourceData:
            train = LabeledImages(images, labels)
            one = train.subset(np.arange(1))
            return SourceData("pool", tuple(str(d) for d in range(10)), train=train, val=one,
                              test=one)

    datamodule = HandwritingDataModule(Pool(), split={"train": None}, batch_size=batch_size)
    datamodule.setup("fit")
    return datamodule


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.{digits}f}%"


def fmt(value: Any) -> str:
    """Numbers for tables: thousands separators for ints, about 3 significant digits else."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value) or abs(value) >= 1000:
        return f"{value:,.0f}" if math.isfinite(value) else str(value)
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table (readable in a terminal too); numbers go through :func:`fmt`."""
    cells = [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    return tabulate(cells, headers, tablefmt="github", disable_numparse=True)


def _jsonable(value: Any) -> Any:
    """Plain JSON types; NaN/inf (e.g. the accuracy of an empty bucket) become null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` as pretty JSON; no-op when ``path`` is None."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n")
    print(f"JSON written to {path}")


def machine_line(info: dict[str, Any]) -> str:
    load = " ".join(f"{v:.2f}" for v in info.get("load_average") or [])
    return (f"Measured {info['date']} on {info['cpu']}, {info['cores']} usable cores, torch "
            f"{info['torch']} ({info['torch_threads']} threads), Lightning {info['lightning']}, "
            f"Python {info['python']}; load average at the end {load or 'n/a'}.")
