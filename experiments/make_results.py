"""Write experiments/RESULTS.md from the finished experiment runs (never edit it by hand).

Reads every sweep dir under ``outputs/experiments/`` (``run.json`` of each run, plus the
``official_test.json`` that ``run_experiments.py crosseval`` adds and the drawn-digit JSON
that ``run_experiments.py canvas`` writes) and renders one table per experiment, a summary
table, the machine, and the exact commands that reproduce each sweep.

    python experiments/make_results.py [--output-dir outputs/experiments] [--out experiments/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (HERE, ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from run_experiments import (  # noqa: E402
    CANVAS_DIR,
    COMMAND_FILE,
    EXPERIMENTS,
    OFFICIAL_TEST_FILE,
    OUTPUT_DIR,
    Experiment,
    display,
    train_command,
)

RESULTS_FILE = HERE / "RESULTS.md"
_SEED = re.compile(r"^seed=")
_BEST_EPOCH = re.compile(r"epoch(\d+)")


@dataclass(frozen=True)
class Run:
    """One finished training run, as read from its run dir."""

    run_dir: Path
    metrics: dict[str, float]
    config: dict[str, Any]
    overrides: tuple[str, ...]
    data_source: str
    sizes: dict[str, int]
    best_checkpoint: str | None
    official_test: float | None

    @property
    def seed(self) -> int | None:
        return self.config.get("seed")

    @property
    def best_epoch(self) -> int | None:
        """Epoch (1-based) of the checkpoint that was tested, from its file name."""
        match = _BEST_EPOCH.search(Path(self.best_checkpoint).name) if self.best_checkpoint else None
        return int(match.group(1)) + 1 if match else None

    @property
    def group(self) -> str:
        """What distinguishes this run's configuration, seeds aside."""
        return " ".join(o for o in self.overrides if not _SEED.match(o))


def read_run(run_dir: Path) -> Run:
    summary = json.loads((run_dir / "run.json").read_text())
    overrides_path = run_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_path.read_text()) if overrides_path.is_file() else []
    official_path = run_dir / OFFICIAL_TEST_FILE
    official = json.loads(official_path.read_text())["acc"] if official_path.is_file() else None
    return Run(run_dir, summary["metrics"], summary.get("config", {}), tuple(overrides or ()),
               summary.get("data_source", "?"), summary.get("sizes", {}),
               summary.get("best_checkpoint"), official)


def read_sweep(sweep_dir: Path) -> list[Run]:
    runs = [read_run(p.parent) for p in sorted(sweep_dir.rglob("run.json"))]
    return sorted(runs, key=lambda r: (r.group, r.seed if r.seed is not None else -1))


# --------------------------------------------------------------------------- numbers


@dataclass(frozen=True)
class Stats:
    mean: float
    std: float   # sample standard deviation (n - 1); 0 for a single run
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: list[float | None]) -> Stats | None:
        clean = [float(v) for v in values if v is not None and not math.isnan(float(v))]
        if not clean:
            return None
        std = statistics.stdev(clean) if len(clean) > 1 else 0.0
        return cls(statistics.fmean(clean), std, min(clean), max(clean), len(clean))


def pct(stats: Stats | None) -> str:
    """``mean ± std`` in percent; a single run has no spread to show."""
    if stats is None:
        return "n/a"
    if stats.n == 1:
        return f"{100 * stats.mean:.2f}"
    return f"{100 * stats.mean:.2f} ± {100 * stats.std:.2f}"


def pct_range(stats: Stats | None) -> str:
    if stats is None:
        return "n/a"
    return "" if stats.n == 1 else f"{100 * stats.min:.2f} / {100 * stats.max:.2f}"


def one(value: float | None, percent: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.2f}" if percent else f"{value:.0f}"


def seconds(stats: Stats | None) -> str:
    if stats is None:
        return "n/a"
    if stats.n == 1:
        return f"{stats.mean:.0f} s"
    return f"{stats.mean:.0f} s ({stats.min:.0f}-{stats.max:.0f})"


# --------------------------------------------------------------------------- describing


def describe_augment(augment: dict[str, Any] | None) -> str:
    if not augment:
        return "none"
    parts = []
    if augment.get("rotate_deg") or augment.get("translate") or augment.get("shear_deg"):
        parts.append(f"affine (rot {augment.get('rotate_deg', 0):g}°, shift "
                     f"{augment.get('translate', 0):g}, shear {augment.get('shear_deg', 0):g}°, "
                     f"zoom {'-'.join(f'{s:g}' for s in augment.get('scale', (1, 1)))})")
    if augment.get("elastic_alpha"):
        parts.append(f"elastic (α {augment['elastic_alpha']:g}, σ {augment.get('elastic_sigma', 0):g})")
    if augment.get("thickness_p"):
        parts.append(f"thickness (p {augment['thickness_p']:g})")
    return " + ".join(parts) or "none"


def describe_model(config: dict[str, Any]) -> str:
    model = config.get("model", {})
    text = "784-" + "-".join(str(h) for h in model.get("hidden_sizes", [])) + "-10"
    extras = []
    if model.get("batch_norm"):
        extras.append("batch norm")
    if model.get("dropout"):
        extras.append(f"dropout {model['dropout']:g}")
    if model.get("label_smoothing"):
        extras.append(f"label smoothing {model['label_smoothing']:g}")
    extras.append(f"Adam {model.get('lr', config.get('lr', float('nan'))):g}")
    if model.get("scheduler", "none") != "none":
        extras.append(model["scheduler"])
    batch = config.get("data", {}).get("batch_size")
    if batch:
        extras.append(f"batch {batch}")
    max_epochs = config.get("trainer", {}).get("max_epochs")
    if max_epochs:
        extras.append(f"max {max_epochs} epochs")
    return f"{text} ({', '.join(extras)})"


def describe_data(run: Run) -> str:
    sizes = run.sizes
    split = "/".join(f"{sizes[k]:,}" for k in ("train", "val", "test") if k in sizes)
    return f"{run.data_source} {split}".strip()


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Group:
    """Runs of one configuration (they differ only in seed)."""

    experiment: str
    label: str
    runs: list[Run]

    def stat(self, key: str) -> Stats | None:
        return Stats.of([r.metrics.get(key) for r in self.runs])

    @property
    def official(self) -> Stats | None:
        return Stats.of([r.official_test for r in self.runs])

    @property
    def target(self) -> float | None:
        experiment = EXPERIMENTS.get(self.experiment)
        return experiment.target if experiment else None


def groups_of(experiment: str, runs: list[Run]) -> list[Group]:
    by_label: dict[str, list[Run]] = {}
    for run in runs:
        by_label.setdefault(run.group, []).append(run)
    shared = set.intersection(*(set(r.overrides) for r in runs)) if runs else set()
    out = []
    for members in by_label.values():
        distinct = " ".join(o for o in members[0].overrides if o not in shared and not _SEED.match(o))
        out.append(Group(experiment, distinct, members))
    return out


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def target_cell(group: Group) -> str:
    target, test = group.target, group.stat("test/acc")
    if target is None or test is None:
        return ""
    # Compare at the precision shown (float32 metrics: 0.9929999709 is 99.30 %).
    met = round(test.mean, 4) >= round(target, 4)
    return f"{100 * target:.1f}: {'met' if met else 'NOT met'}"


def drawn_cell(group: Group) -> str:
    """Real drawings by held-out writers: mean drawn/acc (worst writer), target when set."""
    drawn, worst = group.stat("drawn/acc"), group.stat("drawn/worst_writer_acc")
    if drawn is None:
        return ""
    text = f"{pct(drawn)} (worst writer {pct(worst)})"
    experiment = EXPERIMENTS.get(group.experiment)
    if experiment and experiment.drawn_target and worst is not None:
        met = drawn.mean >= experiment.drawn_target[0] and worst.mean >= experiment.drawn_target[1]
        text += (f"; target {100 * experiment.drawn_target[0]:.1f} / "
                 f"{100 * experiment.drawn_target[1]:.0f}: {'met' if met else 'NOT met'}")
    return text


def summary_table(groups: list[Group]) -> str:
    headers = ["experiment", "data (train/val/test)", "seeds", "val acc %", "test acc %",
               "test min / max %", "official 10k test %", "target %", "real drawings %",
               "epochs (best)", "time / run"]
    rows = []
    for g in groups:
        name = g.experiment + (f" `{g.label}`" if g.label else "")
        epochs = Stats.of([r.metrics.get("epochs") for r in g.runs])
        best = Stats.of([r.best_epoch for r in g.runs])
        rows.append([
            name, describe_data(g.runs[0]), str(len(g.runs)), pct(g.stat("val/acc")),
            pct(g.stat("test/acc")), pct_range(g.stat("test/acc")),
            pct(g.official) if g.official else "", target_cell(g), drawn_cell(g),
            (f"{epochs.mean:.0f}" if epochs else "n/a") + (f" ({best.mean:.0f})" if best else ""),
            seconds(Stats.of([r.metrics.get("train_seconds") for r in g.runs])),
        ])
    return md_table(headers, rows)


def group_table(group: Group) -> str:
    has_official = group.official is not None
    headers = ["seed", "val acc %", "test acc %"] + (["official 10k test %"] if has_official else [])
    has_drawn = group.stat("drawn/acc") is not None
    headers += (["drawn %", "worst writer %"] if has_drawn else []) + [
        "train acc %", "epochs", "best epoch", "time", "s / epoch"]
    rows = []
    for run in group.runs:
        m = run.metrics
        epochs = m.get("epochs") or float("nan")
        rows.append(
            [str(run.seed), one(m.get("val/acc")), one(m.get("test/acc"))]
            + ([one(run.official_test)] if has_official else [])
            + ([one(m.get("drawn/acc")), one(m.get("drawn/worst_writer_acc"))] if has_drawn else [])
            + [one(m.get("train/acc")), one(epochs, percent=False), str(run.best_epoch or "n/a"),
               f"{m.get('train_seconds', float('nan')):.0f} s",
               f"{m.get('train_seconds', float('nan')) / epochs:.1f}" if epochs == epochs and epochs else "n/a"]
        )
    time_stats = Stats.of([r.metrics.get("train_seconds") for r in group.runs])
    rows.append(
        ["**mean ± std**", pct(group.stat("val/acc")), pct(group.stat("test/acc"))]
        + ([pct(group.official)] if has_official else [])
        + ([pct(group.stat("drawn/acc")), pct(group.stat("drawn/worst_writer_acc"))]
           if has_drawn else [])
        + [pct(group.stat("train/acc")), "", "", seconds(time_stats), ""]
    )
    rows.append(["min / max", pct_range(group.stat("val/acc")), pct_range(group.stat("test/acc"))]
                + ([pct_range(group.official)] if has_official else [])
                + ([pct_range(group.stat("drawn/acc")),
                    pct_range(group.stat("drawn/worst_writer_acc"))] if has_drawn else [])
                + ["", "", "", "", ""])
    return md_table(headers, rows)


def reproduce_commands(sweep_dir: Path) -> list[str]:
    """The exact commands: as run_experiments.py recorded them (one per invocation, e.g. a
    rerun of one seed in ``part1/``), else rebuilt from Hydra's multirun.yaml."""
    commands = []
    for record in sorted(sweep_dir.rglob(COMMAND_FILE)):
        data = json.loads(record.read_text())
        threads = data.get("threads")
        prefix = f"OMP_NUM_THREADS={threads} " if threads else ""
        status = data.get("returncode")
        note = f"  # exit status {status}" if status else ""
        commands.append(prefix + data["command"] + note)
    if commands:
        return commands
    multirun = sweep_dir / "multirun.yaml"
    if multirun.is_file():
        hydra = (yaml.safe_load(multirun.read_text()) or {}).get("hydra", {})
        task = hydra.get("overrides", {}).get("task", [])
        sweep = hydra.get("sweep", {}).get("dir")
        parts = [*task] + ([f"hydra.sweep.dir={sweep}"] if sweep else [])
        return ["python train.py --multirun " + shlex.join(parts)]
    return []


def rerun_hint(experiment: Experiment) -> str:
    """How to run the experiment again with today's config files (the registry pins every
    value that has changed since earlier runs)."""
    mnist = " --mnist-dir $MNIST" if experiment.mnist else ""
    command = train_command(experiment, experiment.seeds, None, Path("outputs/experiments") /
                            experiment.name, Path("$MNIST") if experiment.mnist else None, nice=10)
    text = "OMP_NUM_THREADS=1 " + display(command).replace(
        "'data.source.cache_dir=$MNIST'", 'data.source.cache_dir="$MNIST"')
    return (f"Re-run with the current configs: `python experiments/run_experiments.py{mnist} run "
            f"{experiment.name}`, which runs\n\n```\n{text}\n```\n")


def canvas_section(output_dir: Path) -> str:
    folder = output_dir / CANVAS_DIR
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return ""
    from benchmarks.canvas_robustness import markdown

    parts = ["## Drawn-digit robustness (benchmarks/canvas_robustness.py)\n",
             "Each test digit is thinned to its skeleton and redrawn with a round pen of the "
             "app's stroke width on a 280x280 canvas (white on black, random size and position), "
             "then read through the app's path (`prepare_canvas` -> model). *plain*: the test "
             "digits as stored; *plain via app*: the stored digits through the app's "
             "preprocessing; *drawn*: the redrawn canvases; *gap* = plain - drawn (target <= 2 "
             "points). Models given as sweeps: mean ± std over their seeds. *gap 95% CI*: "
             "from the paired per-digit differences (averaged over seeds), i.e. how much the "
             "gap could move on another sample of test digits of the same size.\n"]
    for path in files:
        payload = json.loads(path.read_text())
        config = payload["config"]
        parts.append(f"### {path.stem}: {config['description']}\n")
        parts.append(markdown(payload) + "\n")
        command = payload.get("command")
        if command:
            parts.append(f"```\n{command}\n```\n")
    return "\n".join(parts)


def render(output_dir: Path, machine: dict[str, Any] | None = None) -> str:
    sweeps = sorted(p for p in output_dir.iterdir() if p.is_dir() and any(p.rglob("run.json")))
    order = {name: i for i, name in enumerate(EXPERIMENTS)}
    sweeps.sort(key=lambda p: (order.get(p.name, len(order)), p.name))
    all_groups: list[Group] = []
    sections = []
    for sweep in sweeps:
        runs = read_sweep(sweep)
        groups = groups_of(sweep.name, runs)
        all_groups += groups
        experiment = EXPERIMENTS.get(sweep.name)
        lines = [f"### {sweep.name}\n"]
        if experiment:
            lines.append(experiment.description + "\n")
        lines.append(f"- data: {describe_data(runs[0])}")
        for group in groups:
            label = f" `{group.label}`" if group.label else ""
            lines.append(f"- model{label}: {describe_model(group.runs[0].config)}")
            lines.append(f"- augmentation{label}: "
                         f"{describe_augment(group.runs[0].config.get('data', {}).get('augment'))}")
        commands = reproduce_commands(sweep)
        if commands:
            lines.append("\nCommands run (as recorded; the config files may have changed since, the "
                         "model and augmentation lines above come from the runs' saved configs):")
            lines.append("\n```\n" + "\n".join(commands) + "\n```\n")
        if experiment:
            lines.append(rerun_hint(experiment))
        for group in groups:
            if group.label:
                lines.append(f"\n`{group.label}`\n")
            lines.append(group_table(group) + "\n")
        sections.append("\n".join(lines))

    header = [
        "# Experiment results",
        "",
        "GENERATED by `python experiments/make_results.py` from the run.json files under "
        f"`{_display(output_dir)}`: do not edit by hand.",
        "",
        "Accuracies in %, mean ± sample standard deviation over seeds. *test* is the data's own "
        "test split (official MNIST 10k for `data=mnist`, the embedded 1,000 otherwise); the "
        "model tested is the checkpoint with the best validation accuracy. *official 10k test*: "
        "models trained on the embedded digits (the first 10k of the official training file), "
        "scored on the independent official test set. *time / run*: wall time of the whole "
        "run (data loading, training, testing, report) on the machine named here.",
        "",
    ]
    if machine:
        header += [f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, "
                   f"{machine.get('memory_gib')} GiB, torch {machine.get('torch')}, Lightning "
                   f"{machine.get('lightning')}, Python {machine.get('python')}; runs with one "
                   "torch thread each under `nice`, on a machine shared with other jobs: times "
                   "vary 2-3x with the load (and with changes to the training code's speed "
                   "between runs), so compare accuracies across experiments, and times only "
                   "roughly.", ""]
    header += ["## Summary", "", summary_table(all_groups) if all_groups else "(no runs yet)", "",
               "## Per experiment", ""]
    body = "\n".join(header) + "\n" + "\n".join(sections)
    canvas = canvas_section(output_dir)
    if canvas:
        body += "\n" + canvas
    return body.rstrip() + "\n"


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR, help="the experiments' sweep dirs")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help="the Markdown file to write")
    parser.add_argument("--no-machine", action="store_true", help="leave the machine line out")
    args = parser.parse_args(argv)
    if not args.output_dir.is_dir():
        print(f"error: {args.output_dir} does not exist: run experiments/run_experiments.py first",
              file=sys.stderr)
        return 2
    machine = None
    if not args.no_machine:
        from benchmarks.common import machine_info

        machine = machine_info()
    text = render(args.output_dir, machine)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
