"""Framework overhead: one training epoch with Lightning ``Trainer.fit`` versus a plain
PyTorch loop (same ``build_mlp`` network, Adam, batch 128, batch-indexed loader) and versus
a minimal LightningModule (no torchmetrics, no self.log: the framework's own cost). Target:
Lightning/plain <= 1.3x. Variants alternate order over the repeats, after a warm-up epoch.

    python -m benchmarks.train_speed                       # embedded 8k training split
    python -m benchmarks.train_speed --data mnist --mnist-dir /path/to/mnist   # 60k
"""

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from benchmarks import common
from handwriting.model import MLPClassifier, build_mlp

TARGET_RATIO = 1.3
VARIANTS = {"plain": "plain PyTorch loop", "lightning": "Lightning `fit`, MLPClassifier",
            "lightning_minimal": "Lightning `fit`, minimal LightningModule"}  # name: table label
NOISY_SPREAD = 2.0  # slowest / fastest repeat of one variant beyond which a run is flagged
HIDDEN, LR, BATCH, SEED = [128, 128], 1e-3, 128, 0  # the reference MLP, Adam, batch 128


class MinimalModule(pl.LightningModule):
    """The same network and optimizer with nothing else: the framework's bare cost."""

    def __init__(self) -> None:
        super().__init__()
        self.net = build_mlp(784, HIDDEN, 10)
        self.loss_fn = nn.CrossEntropyLoss()

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=LR)


def add_data(p: argparse.ArgumentParser) -> None:
    """``--data embedded|mnist`` and ``--mnist-dir`` (the four official MNIST .gz files)."""
    p.add_argument("--data", choices=("embedded", "mnist"), default="embedded",
                   help="embedded: the packaged 10k digits' split; mnist: the official files")
    p.add_argument("--mnist-dir", type=Path, default=None,
                   help="folder with the four official MNIST .gz files (for --data mnist)")


def mnist_train(mnist_dir: Path | None) -> Any:
    """All 60k official MNIST training images, read from ``mnist_dir`` (never downloaded)."""
    from handwriting.data.mnist import MNIST

    if mnist_dir is None:
        raise common.BenchmarkError(
            "--data mnist needs --mnist-dir (a folder with the MNIST files)")
    return MNIST(cache_dir=str(common.check_mnist_dir(mnist_dir)), download=False).load().train


def plain_epochs(datamodule: Any, hidden: list[int], epochs: int = 1) -> list[float]:
    """Seconds of each of ``epochs`` plain-loop epochs of one fresh seeded model."""
    torch.manual_seed(SEED)
    net = build_mlp(784, hidden, 10)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        for x, y in datamodule.train_dataloader():
            optimizer.zero_grad()
            loss_fn(net(x), y).backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return seconds


def epoch_seconds(datamodule: Any, variant: str) -> float:
    if variant == "plain":
        return plain_epochs(datamodule, HIDDEN)[0]
    torch.manual_seed(SEED)
    minimal = variant == "lightning_minimal"
    module = MinimalModule() if minimal else MLPClassifier(hidden_sizes=HIDDEN, lr=LR)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=datamodule.train_dataloader())
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> dict[str, Any]:
    common.quiet_lightning()
    threads = common.set_threads(args.threads)
    train = (mnist_train(args.mnist_dir) if args.data == "mnist"
             else common.load_data_config("embedded").splits.train)  # as training splits it
    n_train = args.train_size or len(train)
    if n_train > len(train):
        raise common.BenchmarkError(f"--train-size {n_train} exceeds the {len(train)} training "
                                    f"images of --data {args.data}")
    datamodule = common.train_only_datamodule(train.images[:n_train], train.labels[:n_train],
                                              BATCH)
    for name in list(VARIANTS) * args.warmup:  # imports, allocator, first calls: not measured
        epoch_seconds(datamodule, name)
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for repeat in range(args.repeats):
        for name in reversed(VARIANTS) if repeat % 2 else VARIANTS:  # cancel slow drifts
            samples[name].append(epoch_seconds(datamodule, name))
    results = {}
    for name, seconds in samples.items():
        stats = common.summarize(seconds)
        results[name] = {**stats, "samples": seconds,
                         "samples_per_s_median": n_train / stats["median"],
                         "samples_per_s_best": n_train / stats["min"]}
    plain, light = results["plain"], results["lightning"]
    ratio_median, ratio_min = light["median"] / plain["median"], light["min"] / plain["min"]
    steps = -(-n_train // BATCH)
    return {
        "benchmark": "train_speed", "machine": common.machine_info(),
        "config": {"data": args.data, "train_size": n_train, "batch_size": BATCH,
                   "steps_per_epoch": steps, "hidden_sizes": HIDDEN, "lr": LR,
                   "repeats": args.repeats, "warmup": args.warmup, "torch_threads": threads},
        "results": results, "ratio_median": ratio_median, "ratio_min": ratio_min,
        "ratio_minimal_median": results["lightning_minimal"]["median"] / plain["median"],
        "overhead_ms_per_step": (light["median"] - plain["median"]) / steps * 1000,
        "target_ratio": TARGET_RATIO, "within_target_median": ratio_median <= TARGET_RATIO,
        "within_target_min": ratio_min <= TARGET_RATIO, "note": common.NOISE_NOTE,
    }


def noise_flag(p: dict[str, Any]) -> str:
    spread = max(v["max"] / v["min"] for v in p["results"].values())
    return "" if spread <= NOISY_SPREAD else (
        f"**noisy**: one variant's repeats differ up to {spread:.0f}x (other processes "
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
    rows = [[VARIANTS[k], f"{v['median']:.3f}", f"{v['min']:.3f}", f"{v['max']:.3f}",
             v["samples_per_s_median"], f"{v['median'] / res['plain']['median']:.2f}"]
            for k, v in res.items()]
    verdict = {True: "met", False: "not met"}
    return "\n\n".join(filter(None, [
        f"One epoch of {cfg['train_size']:,} {cfg['data']} images, batch {cfg['batch_size']} "
        f"({cfg['steps_per_epoch']} steps), MLP 784-{'-'.join(map(str, cfg['hidden_sizes']))}-10, "
        f"Adam; {cfg['repeats']} interleaved repeats after {cfg['warmup']} warm-up; "
        f"**torch threads: {cfg['torch_threads']}**.",
        common.table(["variant", "median s", "min s", "max s", "samples/s (median)",
                      "x plain (median)"], rows),
        f"**Lightning/plain: {p['ratio_median']:.2f}x median, {p['ratio_min']:.2f}x best-of** "
        f"(target <= {p['target_ratio']}x: {verdict[p['within_target_median']]} by the median, "
        f"{verdict[p['within_target_min']]} best-of); {p['overhead_ms_per_step']:.2f} ms extra "
        "per step (median). The minimal LightningModule (same network and optimizer, no "
        f"torchmetrics, no `self.log`) takes {p['ratio_minimal_median']:.2f}x plain: the "
        "framework's own cost. MLPClassifier adds its metric bookkeeping to that.",
        noise_flag(p),
    ]))


def main(argv: list[str] | None = None) -> int:
    p = common.cli(__doc__)
    add_data(p)
    p.add_argument("--train-size", type=common.positive_int, default=None,
                   help="use only the first N training images (default: all)")
    p.add_argument("--repeats", type=common.positive_int, default=5,
                   help="measured epochs per variant")
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run (512 images, 1 repeat, no warm-up): checks, not numbers")
    args = p.parse_args(argv)
    args.warmup = 0 if args.quick else 1  # unmeasured epochs per variant first
    if args.quick:
        args.train_size, args.repeats = args.train_size or 512, 1
    payload = run(args)
    return common.finish(payload, markdown(payload), args.json_out)


if __name__ == "__main__":
    sys.exit(common.run_main(main))
