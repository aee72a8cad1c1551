"""Summarize a sweep directory: ranked table, a plot, and promotion of the best run.

Works on any directory holding finished runs (``run.json``), e.g. a Hydra
``--multirun`` sweep dir, an Optuna sweep, or a folder of single runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from handwriting.promotion import promote
from handwriting.runs import Candidate, best_run, find_runs, rank_runs


@dataclass(frozen=True)
class RunRow:
    candidate: Candidate
    overrides: str

    @property
    def metrics(self) -> dict[str, float]:
        return self.candidate.metrics

    @property
    def lr(self) -> float:
        return float(self.candidate.config["model"]["lr"])

    @property
    def architecture(self) -> str:
        model = self.candidate.config["model"]
        arch = "-".join(str(h) for h in model["hidden_sizes"])
        extras = [k for k in ("batch_norm",) if model.get(k)]
        if model.get("dropout"):
            extras.append(f"drop{model['dropout']}")
        return arch + ("+" + ",".join(extras) if extras else "")


def _overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    return list(yaml.safe_load(path.read_text()) or [])


def collect(directory: Path) -> list[RunRow]:
    """Finished runs, best first; ``overrides`` keeps only what differs between runs."""
    candidates = find_runs(directory)
    overrides = [_overrides(c.run_dir) for c in candidates]
    shared = set.intersection(*(set(o) for o in overrides)) if overrides else set()
    rows = [RunRow(c, " ".join(x for x in o if x not in shared))
            for c, o in zip(candidates, overrides, strict=True)]
    order = [c.run_dir for c in rank_runs(candidates)]
    return sorted(rows, key=lambda r: order.index(r.candidate.run_dir))


def format_table(rows: list[RunRow]) -> str:
    header = (f"{'rank':>4}  {'val acc':>8}  {'test acc':>8}  {'drawn':>8}  {'worst wr':>8}  "
              f"{'epochs':>6}  {'time s':>7}  config")
    lines = [header, "-" * len(header)]
    for rank, row in enumerate(rows, 1):
        m = row.metrics
        config = row.overrides or f"lr={row.lr:g} hidden={row.architecture}"
        lines.append(
            f"{rank:>4}  {m['val/acc']:>8.2%}  {m.get('test/acc', float('nan')):>8.2%}  "
            f"{m.get('drawn/acc', float('nan')):>8.2%}  "
            f"{m.get('drawn/worst_writer_acc', float('nan')):>8.2%}  {int(m.get('epochs', 0)):>6}  {m.get('train_seconds', float('nan')):>7.1f}  {config}"
        )
    return "\n".join(lines)


def plot(rows: list[RunRow], path: Path) -> None:
    """Validation accuracy against learning rate, one line per architecture."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    by_arch: dict[str, list[RunRow]] = {}
    for row in rows:
        by_arch.setdefault(row.architecture, []).append(row)
    for arch, group in sorted(by_arch.items()):
        group = sorted(group, key=lambda r: r.lr)
        ax.plot([r.lr for r in group], [r.metrics["val/acc"] for r in group], "o-", label=arch)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"sweep: {len(rows)} runs")
    ax.grid(alpha=0.3)
    ax.legend(title="hidden sizes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(directory: Path, promote_to: str | Path | None = None, force: bool = False) -> list[RunRow]:
    """Print the ranked table, write ``summary.md``/``summary.json``/``summary.png`` into the
    sweep dir and promote the best run (by validation accuracy) when ``promote_to`` is set."""
    rows = collect(directory)
    if not rows:
        raise ValueError(f"no finished runs (run.json) under {directory}")
    table = format_table(rows)
    print(table)
    plot(rows, directory / "summary.png")
    (directory / "summary.md").write_text(f"# Sweep {directory.name}\n\n```\n{table}\n```\n")
    (directory / "summary.json").write_text(json.dumps(
        [{"run_dir": str(r.candidate.run_dir), "overrides": r.overrides, "metrics": r.metrics}
         for r in rows], indent=2))
    print(f"\nplot: {directory / 'summary.png'}")
    if promote_to is not None:
        best = best_run([r.candidate for r in rows])
        result = promote(best, promote_to, force=force)
        verdict = "Promoted" if result.promoted else "Not promoted"
        print(f"best run {best.run_dir.name} -> {verdict} ({result.path}): {result.reason}")
    return rows
