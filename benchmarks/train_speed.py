"""Framework overhead: one training epoch with Lightning ``Trainer.fit`` versus a plain
PyTorch loop over the same model, data, optimizer and batches.

Both sides use the network ``handwriting.model.build_mlp`` builds, Adam, batch size 128
and the data module's in-memory batch-indexed loader, in one process, interleaved
(alternating order) and repeated after a warm-up of each. Lightning runs with no logger,
no checkpointing, no progress bar and no validation loop. A third variant, a minimal
LightningModule (no torchmetrics, no self.log), separates the framework's own cost
from MLPClassifier's metric bookkeeping.

    python -m benchmarks.train_speed                       # embedded 8k training split
    python -m benchmarks.train_speed --data mnist --mnist-dir /path/to/mnist   # 60k
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from benchmarks.common import (
    NOISE_NOTE,
    BenchmarkError,
    add_data,
    check_mnist_dir,
    cli,
    finish,
    load_data_config,
    machine_info,
    positive_int,
    quiet_lightning,
    run_main,
    set_threads,
    summarize,
    table,
    train_only_datamodule,
)
from handwriting.model import MLPClassifier, build_mlp

TARGET_RATIO = 1.3
VARIANTS = ("plain", "lightning", "lightning_minimal")
NOISY_SPREAD = 2.0  # slowest / fastest repeat of one variant beyond which a run is flagged
HIDDEN, LR, BATCH, SEED = [128, 128], 1e-3, 128, 0  # the reference MLP, Adam, batch 128


class MinimalModule(pl.LightningModule):
    """The same network and optimizer with nothing else: the framework's bare cost."""

    def __init__(self, hidden_sizes: list[int], lr: float) -> None:
        super().__init__()
        self.net = build_mlp(784, hidden_sizes, 10)
        self.loss_fn = nn.CrossEntropyLoss()
        self.lr = lr

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def build_datamodule(args: argparse.Namespace) -> Any:
    """The embedded 8k training split (as training makes it) or all 60k official images,
    cut to the first ``--train-size`` images when asked."""
    if args.data == "mnist":
        from handwriting.data.mnist import MNIST

        if args.mnist_dir is None:
            raise BenchmarkError("--data mnist needs --mnist-dir (a folder with the MNIST files)")
        train = MNIST(cache_dir=str(check_mnist_dir(args.mnist_dir)), download=False).load().train
    else:
        train = load_data_config("embedded").splits.train
    n = args.train_size or len(train)
    if n > len(train):
        raise BenchmarkError(f"--train-size {n} exceeds the {len(train)} training images of "
                             f"--data {args.data}")
    return train_only_datamodule(train.images[:n], train.labels[:n], BATCH)


def plain_epoch(loader: Any, hidden: list[int], lr: float, seed: int) -> float:
    torch.manual_seed(seed)
    net = build_mlp(784, hidden, 10)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    net.train()
    for x, y in loader:
        optimizer.zero_grad()
        loss_fn(net(x), y).backward()
        optimizer.step()
    return time.perf_counter() - start


def lightning_epoch(loader: Any, hidden: list[int], lr: float, seed: int, minimal: bool) -> float:
    torch.manual_seed(seed)
    module = MinimalModule(hidden, lr) if minimal else MLPClassifier(hidden_sizes=hidden, lr=lr)
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> dict[str, Any]:
    quiet_lightning()
    set_threads(args.threads)
    datamodule = build_datamodule(args)
    n_train = len(datamodule.dataset("train"))
    steps = -(-n_train // BATCH)
    hidden, lr, seed = HIDDEN, LR, SEED
    runners = {
        "plain": lambda: plain_epoch(datamodule.train_dataloader(), hidden, lr, seed),
        "lightning": lambda: lightning_epoch(datamodule.train_dataloader(), hidden, lr, seed, False),
        "lightning_minimal": lambda: lightning_epoch(datamodule.train_dataloader(), hidden, lr,
                                                     seed, True),
    }
    for _ in range(args.warmup):  # imports, allocator, first-call paths: not measured
        for run_one in runners.values():
            run_one()
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for repeat in range(args.repeats):
        for name in VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]:  # cancel slow drifts
            samples[name].append(runners[name]())
    results = {}
    for name in VARIANTS:
        stats = summarize(samples[name])
        results[name] = {**stats, "samples": samples[name],
                         "samples_per_s_median": n_train / stats["median"],
                         "samples_per_s_best": n_train / stats["min"]}
    plain, light = results["plain"], results["lightning"]
    ratio_median, ratio_min = light["median"] / plain["median"], light["min"] / plain["min"]
    return {
        "benchmark": "train_speed",
        "machine": machine_info(),
        "config": {"data": args.data, "train_size": n_train, "batch_size": BATCH,
                   "steps_per_epoch": steps, "hidden_sizes": hidden, "lr": lr,
                   "repeats": args.repeats, "warmup": args.warmup,
                   "torch_threads": torch.get_num_threads()},
        "results": results,
        "ratio_median": ratio_median,
        "ratio_min": ratio_min,
        "ratio_minimal_median": results["lightning_minimal"]["median"] / plain["median"],
        "overhead_ms_per_step": (light["median"] - plain["median"]) / steps * 1000,
        "target_ratio": TARGET_RATIO,
        "within_target_median": ratio_median <= TARGET_RATIO,
        "within_target_min": ratio_min <= TARGET_RATIO,
        "note": NOISE_NOTE,
    }


def noise_flag(p: dict[str, Any]) -> str:
    """A warning when one variant's repeats differ so much that the ratios say little."""
    spread = max(v["max"] / v["min"] for v in p["results"].values())
    if spread <= NOISY_SPREAD:
        return ""
    return (f"**noisy**: one variant's repeats differ up to {spread:.0f}x (other processes "
            "held the cores), so these ratios say little; trust best-of and the 1-thread row")


def headline(p: dict[str, Any]) -> str:
    minimal_min = p["results"]["lightning_minimal"]["min"] / p["results"]["plain"]["min"]
    return (f"Lightning/plain epoch time, {p['config']['train_size']:,} images, "
            f"{p['config']['torch_threads']} thread(s): MLPClassifier {p['ratio_median']:.2f}x "
            f"median ({p['ratio_min']:.2f}x best-of); minimal LightningModule "
            f"{p['ratio_minimal_median']:.2f}x median ({minimal_min:.2f}x best-of); target "
            f"{p['target_ratio']}x" + (f"; {noise_flag(p)}" if noise_flag(p) else ""))


def markdown(p: dict[str, Any]) -> str:
    cfg, res = p["config"], p["results"]
    labels = {"plain": "plain PyTorch loop", "lightning": "Lightning `fit`, MLPClassifier",
              "lightning_minimal": "Lightning `fit`, minimal LightningModule"}
    rows = [[labels[k], f"{v['median']:.3f}", f"{v['min']:.3f}", f"{v['max']:.3f}",
             v["samples_per_s_median"], f"{v['median'] / res['plain']['median']:.2f}"]
            for k, v in res.items()]
    verdict = {True: "met", False: "not met"}
    return "\n\n".join(filter(None, [
        f"One epoch of {cfg['train_size']:,} {cfg['data']} images, batch {cfg['batch_size']} "
        f"({cfg['steps_per_epoch']} steps), MLP 784-{'-'.join(map(str, cfg['hidden_sizes']))}-10, "
        f"Adam; {cfg['repeats']} interleaved repeats after {cfg['warmup']} warm-up; "
        f"**torch threads: {cfg['torch_threads']}**.",
        table(["variant", "median s", "min s", "max s", "samples/s (median)", "x plain (median)"],
              rows),
        f"**Lightning/plain: {p['ratio_median']:.2f}x median, {p['ratio_min']:.2f}x best-of** "
        f"(target <= {p['target_ratio']}x: {verdict[p['within_target_median']]} by the median, "
        f"{verdict[p['within_target_min']]} best-of); {p['overhead_ms_per_step']:.2f} ms extra "
        "per step (median). The minimal LightningModule (same network and optimizer, no "
        f"torchmetrics, no `self.log`) takes {p['ratio_minimal_median']:.2f}x plain: the "
        "framework's own cost. MLPClassifier adds its metric bookkeeping to that.",
        noise_flag(p),
    ]))


def main(argv: list[str] | None = None) -> int:
    p = cli(__doc__)
    add_data(p)
    p.add_argument("--train-size", type=positive_int, default=None,
                   help="use only the first N training images (default: all)")
    p.add_argument("--repeats", type=positive_int, default=5, help="measured epochs per variant")
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run (512 images, 1 repeat, no warm-up): checks, not numbers")
    args = p.parse_args(argv)
    args.warmup = 1  # unmeasured epochs per variant first
    if args.quick:
        args.train_size, args.repeats, args.warmup = args.train_size or 512, 1, 0
    payload = run(args)
    return finish(payload, markdown(payload), args.json_out)


if __name__ == "__main__":
    sys.exit(run_main(main))
