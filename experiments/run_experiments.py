"""Launch the accuracy experiments, and the evaluations that need their trained models.

Every experiment is one ``python train.py --multirun`` sweep over seeds, written to
``outputs/experiments/<name>/`` (one run dir per seed, each with its run.json). Nothing is
ever promoted into the app's model dir (``promote.enabled=false``) and only the CSV logger
is used. ``experiments/make_results.py`` turns the sweep dirs into ``RESULTS.md``.

    python experiments/run_experiments.py list
    python experiments/run_experiments.py run reference_embedded strong_embedded
    python experiments/run_experiments.py run strong_mnist --mnist-dir DIR --epochs 40
    python experiments/run_experiments.py crosseval --mnist-dir DIR   # embedded models on the official 10k
    python experiments/run_experiments.py canvas --mnist-dir DIR      # drawn-digit robustness JSON
    python experiments/make_results.py

Runs are started with ``nice`` and one torch thread per process (``--threads``): on a
small shared CPU, one thread per run is several times faster than two threads that fight
other processes for the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = ROOT / "outputs" / "experiments"
COMMAND_FILE = "experiment.json"       # written into each sweep dir by `run`
OFFICIAL_TEST_FILE = "official_test.json"  # written into each embedded run dir by `crosseval`
CANVAS_DIR = "canvas"                  # canvas robustness JSON under OUTPUT_DIR
DEFAULT_SEEDS = (1, 2, 3)


@dataclass(frozen=True)
class Experiment:
    """One sweep: the overrides that define it, what it is for, and its accuracy target."""

    name: str
    overrides: tuple[str, ...]
    description: str
    mnist: bool = False                # needs the official MNIST files
    target: float | None = None        # test accuracy the issue asks for (mean over seeds)
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    extra: tuple[str, ...] = field(default=())  # further sweeps, e.g. over hidden sizes
    mnist_key: str = "data.source"     # where the MNIST source's cache_dir/download live
    drawn_target: tuple[float, float] | None = None  # drawn/acc, drawn/worst_writer_acc

    def train_args(self, seeds: tuple[int, ...], epochs: int | None, sweep_dir: Path,
                   mnist_dir: Path | None) -> list[str]:
        args = [*self.overrides, *self.extra]
        if self.mnist and mnist_dir is not None:
            args += [f"{self.mnist_key}.cache_dir={mnist_dir}", f"{self.mnist_key}.download=false"]
        if epochs is not None:
            args.append(f"trainer.max_epochs={epochs}")
        args += [
            "seed=" + ",".join(str(s) for s in seeds),
            "promote.enabled=false",  # experiments never replace the app's model
            "logger=csv",
            f"hydra.sweep.dir={sweep_dir}",
        ]
        return args


# Epochs of the strong MLP on full MNIST: about 8-18 s per epoch on one core of the shared
# 2-core machine, so 40 epochs keep a run within about 6-12 minutes.
STRONG_MNIST_EPOCHS = 40

# Adds canvas redraws of half the training split to it (val/test untouched); the redraws are
# cached, so only the first run of a sweep pays for them (~20 ms per digit).
REDRAWN_MIX = (
    "data.split.train=null",
    "data.source._target_=benchmarks.strokes.RedrawnTrainingMix",
    "+data.source.fraction=0.5",
    f"+data.source.cache_dir={(OUTPUT_DIR / 'cache').relative_to(ROOT)}",
)

# The first strong-MLP configuration, before tuning (augment=canvas: shift 0.08, thickness
# p 0.5; dropout 0.2). Pinned explicitly so its runs stay reproducible after
# experiments/experiment/strong_mlp.yaml moved on to the tuned values.
FIRST_STRONG = ("+experiment=strong_mlp", "augment=canvas", "model.dropout=0.2", "data.redraw=0.0")

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("reference_embedded", ("+experiment=reference",),
               "Reference MLP 784-128-128-10, Adam 1e-3, no augmentation; embedded 8k/1k/1k."),
    Experiment("reference_mnist", ("+experiment=reference", "data=mnist"),
               "Reference MLP on official MNIST (55k train / 5k val / official 10k test).",
               mnist=True, target=0.975),
    Experiment("strong_tuned_embedded", ("+experiment=strong_mlp", "data.redraw=0.0"),
               "Strong MLP as configured now (2x800, batch norm, dropout 0.1, OneCycle, "
               "augment=strong: affine + elastic + stroke thickness); embedded 8k/1k/1k.",
               target=0.985),
    Experiment("strong_tuned_mnist", ("+experiment=strong_mlp", "data=mnist",
                                      f"trainer.max_epochs={STRONG_MNIST_EPOCHS}"),
               "Strong MLP as configured now, on official MNIST (55k/5k/official 10k), "
               f"{STRONG_MNIST_EPOCHS} epochs to fit a 2-core CPU.", mnist=True, target=0.993),
    Experiment("strong_tuned_mnist_long", ("+experiment=strong_mlp", "data=mnist",
                                           "trainer.max_epochs=100"),
               "What more compute gives: the strong MLP as configured now, on official MNIST "
               "for 100 epochs (2.5x; about 10 minutes on an idle core).", mnist=True,
               target=0.993),
    Experiment("strong_embedded", (*FIRST_STRONG,),
               "First strong-MLP configuration (before tuning: augment=canvas, dropout 0.2); "
               "embedded 8k/1k/1k.", target=0.985),
    Experiment("strong_mnist", (*FIRST_STRONG, "data=mnist",
                                f"trainer.max_epochs={STRONG_MNIST_EPOCHS}"),
               "First strong-MLP configuration on official MNIST, "
               f"{STRONG_MNIST_EPOCHS} epochs.", mnist=True, target=0.993),
    Experiment("strong_mnist_long", (*FIRST_STRONG, "data=mnist", "trainer.max_epochs=100"),
               "What more epochs give: the first strong configuration on official MNIST for "
               "100 epochs (2.5x), one seed.", mnist=True, target=0.993, seeds=(1,)),
    Experiment("tune_strong_mnist", ("+experiment=strong_mlp", "augment=canvas", "data=mnist",
                                     f"trainer.max_epochs={STRONG_MNIST_EPOCHS}",
                                     "data.augment.translate=0.04", "model.dropout=0.1"),
               "Tuning the first strong configuration on official MNIST, one seed: less "
               "regularization (shift 0.04 instead of 0.08: inputs are centred by centre of "
               "mass anyway; dropout 0.1) with stroke-thickness p 0.2 or 0. The p 0.2 variant "
               "became augment=strong / strong_mlp.yaml.", mnist=True, seeds=(1,),
               extra=("data.augment.thickness_p=0.2,0.0",)),
    Experiment("default_embedded", ("augment=none", "data.redraw=0.0"),
               "The default `python train.py` before augment=canvas became the default: "
               "reference MLP, embedded data, 20 epochs max, no augmentation."),
    Experiment("default_canvas_embedded", ("augment=canvas", "data.redraw=0.0"),
               "The default `python train.py` with augment=canvas (affine + elastic + "
               "stroke thickness)."),
    Experiment("default_affine_embedded", ("augment=affine", "data.redraw=0.0"),
               "The default `python train.py` with augment=affine."),
    Experiment("default_strong_aug_embedded", ("augment=strong", "data.redraw=0.0"),
               "The default `python train.py` with the strong MLP's augmentation (shift 0.04, "
               "thickness p 0.2)."),
    Experiment("default_canvas_redrawn_embedded", ("augment=canvas", "data.redraw=0.0", *REDRAWN_MIX),
               "Training-side fix for drawings: the default run with augment=canvas, plus half "
               "of the training digits added again as canvas redraws (RedrawnTrainingMix)."),
    Experiment("default_strong_aug_redrawn_embedded", ("augment=strong", "data.redraw=0.0",
                                                       *REDRAWN_MIX),
               "Training-side fix for drawings: the default run with augment=strong, plus half "
               "of the training digits added again as canvas redraws (RedrawnTrainingMix)."),
    Experiment("strong_redrawn_embedded", (*FIRST_STRONG, *REDRAWN_MIX),
               "Training-side fix for drawings: the first strong configuration on embedded "
               "data, plus half of the training digits added again as canvas redraws."),
    Experiment("app_model", ("+experiment=app_model",),
               "The app's model (experiments/experiment/app_model.yaml): the strong MLP on "
               "official MNIST + real pen strokes of 20 writers (redrawn every epoch) + saved "
               "drawings; test = official 10k; drawn = 6 held-out writers. Pen digits from "
               "$HANDWRITING_DATA_DIR/pendigits.", mnist=True, target=0.993,
               mnist_key="data.source.parts.mnist.source", drawn_target=(0.985, 0.95)),
    Experiment("arch_pick_embedded", FIRST_STRONG,
               "First strong configuration with 1x800 / 2x800 / 3x1024 hidden layers, one seed, "
               "to pick the width and depth.", seeds=(1,),
               extra=("model.hidden_sizes=[800],[800,800],[1024,1024,1024]",)),
    Experiment("aug_pick_embedded", ("+experiment=strong_mlp", "model.dropout=0.2", "data.redraw=0.0"),
               "First strong configuration with augment=elastic / affine instead of canvas, "
               "one seed.", seeds=(1,), extra=("augment=elastic,affine",)),
)}


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"seeds must look like 1,2,3, got {text!r}") from error
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return seeds


def child_env(threads: int) -> dict[str, str]:
    """One torch/OpenMP thread per run unless asked otherwise; W&B never goes online."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                "WANDB_MODE": "offline", "HANDWRITING_ROOT": str(ROOT)})
    return env


def train_command(experiment: Experiment, seeds: tuple[int, ...], epochs: int | None,
                  sweep_dir: Path, mnist_dir: Path | None, nice: int) -> list[str]:
    command = [sys.executable, "train.py", "--multirun",
               *experiment.train_args(seeds, epochs, _relative(sweep_dir), mnist_dir)]
    return (["nice", "-n", str(nice)] if nice else []) + command


def _relative(path: Path) -> Path:
    """Paths inside the project as relative ones, so recorded commands work in any checkout."""
    try:
        return path.resolve().relative_to(ROOT)
    except ValueError:
        return path


def display(command: list[str]) -> str:
    """The command as a user would type it (``python`` for this interpreter)."""
    return shlex.join(["python" if part == sys.executable else part for part in command])


def load_average() -> list[float] | None:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def fresh_sweep_dir(sweep_dir: Path) -> Path:
    """Finished runs are never overwritten: Hydra numbers a sweep's jobs 0, 1, ..., so a
    second invocation (e.g. ``--seeds 3`` to redo a failed run) goes to ``<name>/part<k>``.
    make_results.py reads the runs of every part together."""
    if not sweep_dir.exists() or not any(sweep_dir.rglob("run.json")):
        return sweep_dir
    k = 1
    while (sweep_dir / f"part{k}").exists():
        k += 1
    return sweep_dir / f"part{k}"


def run(args: argparse.Namespace) -> int:
    unknown = [n for n in args.names if n not in EXPERIMENTS]
    if unknown:
        print(f"error: unknown experiment(s) {unknown}; see `{Path(__file__).name} list`",
              file=sys.stderr)
        return 2
    for name in args.names:
        experiment = EXPERIMENTS[name]
        if experiment.mnist and args.mnist_dir is None:
            print(f"note: {name} uses official MNIST and no --mnist-dir was given: the data "
                  "source reads (or downloads into) its default cache", file=sys.stderr)
        seeds = args.seeds or experiment.seeds
        sweep_dir = fresh_sweep_dir((args.output_dir / name).resolve())
        command = train_command(experiment, seeds, args.epochs, sweep_dir, args.mnist_dir, args.nice)
        print("$ " + display(command), flush=True)
        if args.dry_run:
            continue
        sweep_dir.mkdir(parents=True, exist_ok=True)
        record = {"experiment": name, "command": display(command), "threads": args.threads,
                  "seeds": list(seeds), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                  "load_average_start": load_average()}
        started = time.perf_counter()
        status = subprocess.call(command, cwd=ROOT, env=child_env(args.threads))
        record.update(returncode=status, wall_seconds=time.perf_counter() - started,
                      load_average_end=load_average())
        (sweep_dir / COMMAND_FILE).write_text(json.dumps(record, indent=2))
        if status != 0:
            print(f"error: {name} failed with exit status {status}", file=sys.stderr)
            return status
    return 0


def crosseval(args: argparse.Namespace) -> int:
    """Score every run trained on the embedded digits on the official MNIST 10k test set.

    The embedded digits are the first 10,000 of the official training file, so the
    official test set is independent of them. Writes official_test.json into each run dir.
    """
    import numpy as np

    from handwriting.data.mnist import MNIST
    from handwriting.inference import Predictor
    from handwriting.promotion import find_runs

    test = MNIST(cache_dir=str(args.mnist_dir) if args.mnist_dir else None,
                 download=args.mnist_dir is None).load().test
    assert test is not None
    images = test.images.astype(np.float32) / 255.0
    count = 0
    for sweep in sorted(p for p in args.output_dir.iterdir() if p.is_dir()):
        for candidate in find_runs(sweep):
            summary = json.loads((candidate.run_dir / "run.json").read_text())
            # "embedded" or a mix built on it ("embedded+redrawn0.5"): none holds official test digits.
            if not str(summary.get("data_source", "")).startswith("embedded"):
                continue
            predictor = Predictor.from_checkpoint(candidate.checkpoint)
            acc = float((predictor.probabilities(images).argmax(axis=1) == test.labels).mean())
            (candidate.run_dir / OFFICIAL_TEST_FILE).write_text(json.dumps(
                {"acc": acc, "n": len(test), "checkpoint": str(candidate.checkpoint)}, indent=2))
            print(f"{candidate.run_dir.relative_to(args.output_dir)}: official 10k test {acc:.2%}")
            count += 1
    if count == 0:
        print(f"no runs trained on embedded data under {args.output_dir}", file=sys.stderr)
        return 2
    return 0


# The drawn-digit benchmark's standard model sets: (json name, data, subset size, models).
CANVAS_SETS: tuple[tuple[str, str, int | None, tuple[str, ...]], ...] = (
    ("embedded", "embedded", None,
     ("default_embedded", "default_affine_embedded", "default_canvas_embedded",
      "default_strong_aug_embedded", "default_canvas_redrawn_embedded",
      "default_strong_aug_redrawn_embedded", "reference_embedded", "strong_embedded",
      "strong_redrawn_embedded", "strong_tuned_embedded")),
    ("official_embedded_models", "mnist", 2000,
     ("default_embedded", "default_canvas_embedded", "default_strong_aug_embedded",
      "default_canvas_redrawn_embedded", "default_strong_aug_redrawn_embedded",
      "strong_embedded", "strong_redrawn_embedded", "strong_tuned_embedded")),
    ("official_mnist_models", "mnist", 2000,
     ("reference_mnist", "strong_mnist", "strong_tuned_mnist", "strong_tuned_mnist_long")),
)


def canvas(args: argparse.Namespace) -> int:
    """Run benchmarks/canvas_robustness.py on the standard model sets (those that exist)."""
    out = args.output_dir / CANVAS_DIR
    out.mkdir(parents=True, exist_ok=True)
    for label, data, n, names in CANVAS_SETS:
        models = [f"{name}={_relative(args.output_dir / name)}" for name in names
                  if (args.output_dir / name).is_dir() and any((args.output_dir / name).rglob("run.json"))]
        if not models:
            print(f"skip {label}: none of {names} trained yet")
            continue
        if data == "mnist" and args.mnist_dir is None:
            print(f"skip {label}: needs --mnist-dir")
            continue
        command = [sys.executable, "benchmarks/canvas_robustness.py", "--data", data,
                   "--json-out", str(_relative(out / f"{label}.json"))]
        if data == "mnist":
            command += ["--mnist-dir", str(args.mnist_dir)]
        if n is not None:
            command += ["--n", str(n)]
        for model in models:
            command += ["--model", model]
        if args.nice:
            command = ["nice", "-n", str(args.nice), *command]
        print("$ " + display(command), flush=True)
        status = subprocess.call(command, cwd=ROOT, env=child_env(args.threads))
        if status != 0:
            return status
    return 0


def list_experiments(_: argparse.Namespace) -> int:
    for experiment in EXPERIMENTS.values():
        target = f" (target test acc >= {experiment.target:.1%})" if experiment.target else ""
        print(f"{experiment.name:26s} {experiment.description}{target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR,
                        help=f"where the sweep dirs go (default {OUTPUT_DIR.relative_to(ROOT)})")
    parser.add_argument("--mnist-dir", type=Path, default=None,
                        help="folder holding the four official MNIST .gz files")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--nice", type=int, default=10, help="nice level of the runs (0: none)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the experiments and their targets").set_defaults(func=list_experiments)
    run_parser = sub.add_parser("run", help="train experiments (one --multirun sweep each)")
    run_parser.add_argument("names", nargs="+", metavar="NAME")
    run_parser.add_argument("--seeds", type=parse_seeds, default=None, help="e.g. 1,2,3")
    run_parser.add_argument("--epochs", type=int, default=None, help="override trainer.max_epochs")
    run_parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    run_parser.set_defaults(func=run)
    sub.add_parser("crosseval", help="embedded-trained runs on the official 10k test set"
                   ).set_defaults(func=crosseval)
    sub.add_parser("canvas", help="drawn-digit robustness of the trained experiments"
                   ).set_defaults(func=canvas)
    args = parser.parse_args(argv)
    if args.mnist_dir is not None:
        args.mnist_dir = args.mnist_dir.expanduser().resolve()
    args.output_dir = args.output_dir.resolve()
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
