"""Framework overhead: one training epoch with Lightning ``Trainer.fit`` versus a plain
PyTorch loop over the same model, data, optimizer and batches.

Both sides use the network ``handwriting.model.build_mlp`` builds, Adam, batch size 128
and the data module's in-memory batch-indexed loader, in one process, interleaved
(alternating order) and repeated after a warm-up of each. Lightning runs with no logger,
no checkpointing, no progress bar and no validation loop. A third variant, a minimal
LightningModule (no torchmetrics, no self.log), separates the framework's own cost
from MLPClassifier's metric bookkeeping.

    python benchmarks/train_speed.py                       # embedded 8k training split
    python benchmarks/train_speed.py --data mnist --mnist-dir /path/to/mnist   # 60k
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.common import (  # noqa: E402
    NOISE_NOTE,
    BenchmarkError,
    InMemorySource,
    WholePoolAsTrain,
    add_json_out,
    add_threads,
    check_mnist_dir,
    int_list,
    load_data_config,
    machine_info,
    positive_int,
    print_machine,
    quiet_lightning,
    run_main,
    set_threads,
    summarize,
    table,
    timed,
    write_json,
)
from handwriting.data.datamodule import HandwritingDataModule  # noqa: E402
from handwriting.model import MLPClassifier, build_mlp  # noqa: E402

TARGET_RATIO = 1.3
VARIANTS = ("plain", "lightning", "lightning_minimal")


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


def build_datamodule(data: str, mnist_dir: Path | None, train_size: int | None,
                     batch_size: int) -> HandwritingDataModule:
    if data == "mnist":
        from handwriting.data.mnist import MNIST

        if mnist_dir is None:
            raise BenchmarkError("--data mnist needs --mnist-dir (a folder with the MNIST files)")
        source = WholePoolAsTrain(MNIST(cache_dir=str(check_mnist_dir(mnist_dir)), download=False))
        datamodule = HandwritingDataModule(source, split={"train": None}, batch_size=batch_size)
        datamodule.setup("fit")
    else:
        datamodule = load_data_config("embedded")
        datamodule.batch_size = batch_size
    if train_size is not None:
        full = datamodule.dataset("train")
        if train_size > len(full):
            raise BenchmarkError(
                f"--train-size {train_size} exceeds the {len(full)} training images of --data {data}"
            )
        source = InMemorySource(datamodule.source_name, datamodule.splits.train.images,
                                datamodule.splits.train.labels)
        datamodule = HandwritingDataModule(WholePoolAsTrain(source, train_size),
                                           split={"train": None}, batch_size=batch_size)
        datamodule.setup("fit")
    return datamodule


def plain_epoch(datamodule: HandwritingDataModule, hidden: list[int], lr: float, seed: int) -> float:
    torch.manual_seed(seed)
    net = build_mlp(784, hidden, 10)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    loader = datamodule.train_dataloader()

    def epoch() -> None:
        net.train()
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            optimizer.step()

    seconds, _ = timed(epoch)
    return seconds


def lightning_epoch(datamodule: HandwritingDataModule, hidden: list[int], lr: float, seed: int,
                    minimal: bool) -> float:
    torch.manual_seed(seed)
    module: pl.LightningModule = (
        MinimalModule(hidden, lr) if minimal else MLPClassifier(hidden_sizes=hidden, lr=lr)
    )
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    loader = datamodule.train_dataloader()
    seconds, _ = timed(lambda: trainer.fit(module, train_dataloaders=loader))
    return seconds


def run(args: argparse.Namespace) -> dict[str, Any]:
    quiet_lightning()
    set_threads(args.threads)
    datamodule = build_datamodule(args.data, args.mnist_dir, args.train_size, args.batch_size)
    n_train = len(datamodule.dataset("train"))
    steps = -(-n_train // args.batch_size)
    runners = {
        "plain": lambda: plain_epoch(datamodule, args.hidden_sizes, args.lr, args.seed),
        "lightning": lambda: lightning_epoch(datamodule, args.hidden_sizes, args.lr, args.seed, False),
        "lightning_minimal": lambda: lightning_epoch(
            datamodule, args.hidden_sizes, args.lr, args.seed, True
        ),
    }
    for _ in range(args.warmup):  # imports, allocator, first-call paths: not measured
        for run_one in runners.values():
            run_one()
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for repeat in range(args.repeats):
        order = VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]  # cancel slow drifts
        for name in order:
            samples[name].append(runners[name]())

    results = {}
    for name in VARIANTS:
        stats = summarize(samples[name])
        results[name] = {
            **stats,
            "samples": samples[name],
            "samples_per_s_median": n_train / stats["median"],
            "samples_per_s_best": n_train / stats["min"],
        }
    plain, light = results["plain"], results["lightning"]
    ratio_median = light["median"] / plain["median"]
    ratio_min = light["min"] / plain["min"]
    return {
        "benchmark": "train_speed",
        "machine": machine_info(),
        "config": {
            "data": args.data, "train_size": n_train, "batch_size": args.batch_size,
            "steps_per_epoch": steps, "hidden_sizes": args.hidden_sizes, "lr": args.lr,
            "repeats": args.repeats, "warmup": args.warmup,
            "torch_threads": torch.get_num_threads(),
        },
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


def report(payload: dict[str, Any]) -> None:
    cfg, res = payload["config"], payload["results"]
    print_machine(payload["machine"])
    print(
        f"\nOne epoch, {cfg['data']} data, {cfg['train_size']:,} images, batch {cfg['batch_size']} "
        f"({cfg['steps_per_epoch']} steps), MLP 784-{'-'.join(map(str, cfg['hidden_sizes']))}-10, "
        f"Adam; {cfg['repeats']} interleaved repeats after {cfg['warmup']} warm-up, "
        f"torch threads {cfg['torch_threads']}\n"
    )
    labels = {
        "plain": "plain PyTorch loop",
        "lightning": "Lightning fit, MLPClassifier",
        "lightning_minimal": "Lightning fit, minimal module",
    }
    rows = [
        [labels[name], res[name]["median"], res[name]["min"], res[name]["max"],
         res[name]["samples_per_s_median"], res[name]["median"] / res["plain"]["median"]]
        for name in VARIANTS
    ]
    print(table(["variant", "median s", "min s", "max s", "samples/s (median)", "x plain"], rows))
    def verdict(ok: bool) -> str:
        return "within" if ok else "OUTSIDE"

    print(
        f"\nLightning/plain: {payload['ratio_median']:.2f}x median "
        f"({verdict(payload['within_target_median'])} the {payload['target_ratio']}x target), "
        f"{payload['ratio_min']:.2f}x best-of ({verdict(payload['within_target_min'])}); about "
        f"{payload['overhead_ms_per_step']:.2f} ms of overhead per step (median). Best-of is the "
        "least disturbed estimate when the machine is busy."
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=("embedded", "mnist"), default="embedded",
                   help="embedded: the packaged 8k training split; mnist: all 60k official images")
    p.add_argument("--mnist-dir", type=Path, default=None,
                   help="folder with the four official MNIST .gz files (for --data mnist)")
    p.add_argument("--train-size", type=positive_int, default=None,
                   help="use only the first N training images (default: all)")
    p.add_argument("--repeats", type=positive_int, default=5, help="measured epochs per variant")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured epochs per variant first")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--hidden-sizes", type=int_list, default=[128, 128], help="e.g. 128,128")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    add_threads(p)
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run (512 images, 1 repeat, no warm-up): checks, not numbers")
    add_json_out(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.train_size = args.train_size or 512
        args.repeats, args.warmup = 1, 0
    if args.warmup < 0:
        raise BenchmarkError(f"--warmup must be >= 0, got {args.warmup}")
    payload = run(args)
    report(payload)
    write_json(args.json_out, payload)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
