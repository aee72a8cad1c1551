"""Experiment tooling on tiny sizes: every experiment config composes to what it promises
(the names and what they train kept), RESULTS.md tables from fabricated run files (exact
values) and a real Hydra sweep of one experiment rendered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments import results
from handwriting.config import register_configs, validate
from tests.conftest import SHARED_MNIST

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments" / "experiment"
PRODUCT = {"reference", "strong_mlp", "app_model"}   # configs for `python train.py +experiment=`
PARTS = {"research"}                                # included by the research experiments
RESEARCH = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml") if p.stem not in PRODUCT | PARTS)
register_configs()


def composed(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/unused", *overrides],
                       return_hydra_config=hydra)


def training(cfg) -> dict:
    """What a run trains on and with: the config less its name, logging and promotion."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    for key in ("experiment_name", "logger", "promote", "hydra"):
        plain.pop(key, None)
    return plain


# --------------------------------------------------------------------------- configs


def test_there_are_the_fifteen_research_experiments() -> None:
    assert len(RESEARCH) == 15 and "reference_mnist" in RESEARCH and "tune_strong_mnist" in RESEARCH


@pytest.mark.parametrize("name", RESEARCH)
def test_every_experiment_composes_as_a_research_sweep(name: str) -> None:
    cfg = composed(f"+experiment={name}", hydra=True)
    validate(cfg)
    assert cfg.experiment_name == name
    assert cfg.promote.enabled is False and list(cfg.logger) == ["csv"]
    assert cfg.hydra.sweep.dir.startswith(f"{ROOT}/outputs/experiments/{name}/")
    assert str(cfg.hydra.sweeper.params.seed) in ("1,2,3", "1")
    assert results.description(name)  # RESULTS.md says what it is for


@pytest.mark.parametrize(("experiment", "same_as"), [
    ("reference_embedded", ["+experiment=reference"]),
    ("reference_mnist", ["+experiment=reference", "data=mnist"]),
    ("strong_tuned_mnist", ["+experiment=strong_mlp", "data=mnist", "trainer.max_epochs=40"]),
    ("strong_embedded", ["+experiment=strong_mlp", "augment=canvas", "model.dropout=0.2",
                         "data.redraw=0.0"]),
    ("default_strong_aug_embedded", ["augment=strong", "data.redraw=0.0"]),
])
def test_experiments_train_what_their_names_say(experiment: str, same_as: list[str]) -> None:
    """Each research experiment trains exactly what the product configs it names train."""
    assert training(composed(f"+experiment={experiment}")) == training(composed(*same_as))


def test_product_experiments_keep_logging_and_promotion() -> None:
    for name in PRODUCT:
        cfg = composed(f"+experiment={name}")
        assert cfg.promote.enabled is True and "wandb" in cfg.logger


@pytest.mark.slow
def test_a_hydra_sweep_of_an_experiment_renders(tmp_path: Path) -> None:
    sweep = tmp_path / "default_embedded" / "launch"
    done = subprocess.run(
        [sys.executable, "train.py", "-m", "+experiment=default_embedded", "seed=1,2",
         "trainer.max_epochs=1", "data.split.train=500", "data.split.val=200",
         "data.split.test=200", f"hydra.sweep.dir={sweep}", "drawn.enabled=false"],
        cwd=ROOT, env=os.environ | {"PYTHONUNBUFFERED": "1"}, capture_output=True, text=True,
        timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # Embedded-trained runs scored on the official test set too, where its files are here.
    official = ["--official-test", str(SHARED_MNIST)] if SHARED_MNIST.is_dir() else []
    assert results.main(["--output-dir", str(tmp_path), "--out", str(tmp_path / "R.md"),
                         *official]) == 0
    text = (tmp_path / "R.md").read_text()
    headers = cells(text, "| experiment")[0]
    row = dict(zip(headers, cells(text, "| default_embedded")[0], strict=True))
    assert row["seeds"] == "2" and row["data (train/val/test)"] == "embedded 500/200/200"
    assert bool(row["official 10k test %"]) == bool(official)
    assert "python train.py -m +experiment=default_embedded seed=1,2" in text
    assert not (ROOT / "outputs" / "experiments" / "default_embedded" / "launch").exists()


# --------------------------------------------------------------------------- results


def fake_run(run_dir: Path, seed: int, val: float, test: float, seconds: float,
             overrides: list[str], source: str = "mnist", official: float | None = None,
             epochs: int = 10, best_epoch: int = 7,
             drawn: tuple[float, float] | None = None) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*overrides, f"seed={seed}"]))
    metrics = {"val/acc": val, "test/acc": test, "train_clean/acc": 0.99, "epochs": float(epochs),
               "train_seconds": seconds}
    if drawn:
        metrics |= {"drawn/acc": drawn[0], "drawn/worst_writer_acc": drawn[1]}
    (run_dir / "run.json").write_text(json.dumps({
        "metrics": metrics, "config": {"seed": seed}, "data_source": source,
        "best_checkpoint": f"checkpoints/epoch{best_epoch - 1:03d}-val_acc{val:.4f}.ckpt",
        "sizes": {"train": 55000, "val": 5000, "test": 10000}}))
    if official is not None:
        (run_dir / "official_test.json").write_text(json.dumps({"acc": official, "n": 10000}))


@pytest.fixture
def fabricated(tmp_path: Path) -> Path:
    out = tmp_path / "experiments"
    sweep = out / "reference_mnist" / "2026-01-01_00-00-00"
    # float32 metrics as Lightning logs them: 0.97 is stored as 0.9699999690055847.
    for i, (seed, val, test, sec) in enumerate([(1, 0.97, 0.9699999690055847, 100.0),
                                                 (2, 0.98, 0.98, 110.0), (3, 0.99, 0.99, 120.0)]):
        fake_run(sweep / str(i), seed, val, test, sec, ["+experiment=reference_mnist"])
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"overrides": {"task": ["+experiment=reference_mnist", "seed=1,2,3"]}}}))
    # One sweep holding two configurations, trained on embedded data, with cross-evaluation.
    for i, (hidden, seed, test, official) in enumerate([("[800]", 1, 0.96, 0.95),
                                                          ("[800]", 2, 0.98, 0.97),
                                                          ("[800,800]", 1, 0.90, 0.91)]):
        fake_run(out / "arch_pick_embedded" / "x" / str(i), seed, 0.9, test, 50.0,
                 ["+experiment=arch_pick_embedded", f"model.hidden_sizes={hidden}"],
                 source="embedded", official=official)
    # The app model: real drawings by held-out writers beside the MNIST test accuracy.
    for seed, drawn in ((1, (0.98, 0.95)), (2, (0.99, 0.96))):
        fake_run(out / "app_model" / str(seed), seed, 0.99, 0.994, 300.0,
                 ["+experiment=app_model"], drawn=drawn)
    return out


def cells(text: str, start: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith(start)]


def test_results_tables_hold_the_right_numbers(fabricated: Path, tmp_path: Path) -> None:
    target = tmp_path / "RESULTS.md"
    assert results.main(["--output-dir", str(fabricated), "--out", str(target)]) == 0
    text = target.read_text()
    assert text.startswith("# Experiment results") and "GENERATED" in text
    summary = text.split("## Summary")[1].split("## Per experiment")[0]
    headers = cells(summary, "| experiment")[0]
    ref = dict(zip(headers, cells(summary, "| reference_mnist")[0], strict=True))
    # val and test 97/98/99 -> mean 98.00, sample std 1.00; min/max; target 97.5 met.
    assert ref["data (train/val/test)"] == "mnist 55,000/5,000/10,000" and ref["seeds"] == "3"
    assert ref["val acc %"] == ref["test acc %"] == "98.00 ± 1.00"
    assert ref["test min / max %"] == "97.00 / 99.00" and ref["target"] == "test/acc 97.5: met"
    assert ref["real drawings %"] == "" and ref["time / run"] == "110 s (100-120)"
    app = dict(zip(headers, cells(summary, "| app_model")[0], strict=True))
    # drawn 98/99 -> 98.50 (target 98.5 met), worst writer 95/96 -> 95.50 (target 95 met)
    assert app["real drawings %"] == "98.50 ± 0.71" and app["worst writer %"] == "95.50 ± 0.71"
    assert app["target"] == ("test/acc 99.3: met; drawn/acc 98.5: met; "
                             "drawn/worst_writer_acc 95: met")
    # Two configurations in one sweep are two groups, each with its own statistics.
    one, two = (dict(zip(headers, row, strict=True))
                for row in cells(summary, "| arch_pick_embedded"))
    assert one["experiment"].endswith("`model.hidden_sizes=[800,800]`")
    assert one["test acc %"] == "90.00" and one["official 10k test %"] == "91.00"  # one seed
    assert two["test acc %"] == "97.00 ± 1.41" and two["official 10k test %"] == "96.00 ± 1.41"
    # Per experiment: what it is for, the launch as Hydra recorded it, per-seed rows.
    section = text.split("### reference_mnist")[1].split("###")[0]
    assert "Reference MLP on official MNIST" in section
    assert "python train.py -m +experiment=reference_mnist seed=1,2,3" in section
    row = next(r for r in cells(section, "|") if r[1] == "2")
    assert row[2:] == ["98.00", "98.00", "99.00", "10", "7", "110 s"]


def test_results_fail_clearly_without_runs(tmp_path: Path, capsys) -> None:
    assert results.main(["--output-dir", str(tmp_path / "missing")]) == 2
    assert "python train.py -m +experiment=NAME" in capsys.readouterr().err


@pytest.mark.parametrize(("test_acc", "verdict"), [(0.9929999709129333, "met"), (0.9925, "NOT met")])
def test_target_is_judged_at_the_precision_shown(tmp_path: Path, test_acc: float, verdict: str) -> None:
    fake_run(tmp_path / "run", 1, 0.99, test_acc, 1.0, ["+experiment=strong_mnist"])
    assert results.verdict("strong_mnist", results.read_runs(tmp_path)) == f"test/acc 99.3: {verdict}"


# --------------------------------------------------------------------------- W&B sweep

WANDB_SWEEP = ROOT / "experiments" / "wandb_sweep.yaml"


def wandb_sweep_trials(spec: dict) -> list[dict]:
    """Trials a W&B controller could send: every listed value and both ends of every range,
    one parameter at a time, the others at their first value."""
    choices: dict[str, list] = {}
    for name, param in spec["parameters"].items():
        if "values" in param:
            choices[name] = list(param["values"])
        elif "value" in param:
            choices[name] = [param["value"]]
        else:
            choices[name] = [param["min"], param["max"]]
    base = {name: values[0] for name, values in choices.items()}
    return [{**base, name: value} for name, values in choices.items() for value in values]


def test_wandb_sweep_sends_overrides_that_train_py_accepts() -> None:
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    from handwriting.runs import SELECTION_METRIC
    from handwriting.training import SUMMARY_PREFIX

    spec = yaml.safe_load(WANDB_SWEEP.read_text())
    assert (ROOT / spec["program"]).is_file()
    assert spec["command"][-1] == "${args_no_hyphens}"  # key=value: Hydra's override syntax
    assert spec["metric"] == {"name": SUMMARY_PREFIX + SELECTION_METRIC, "goal": "maximize"}
    trials = wandb_sweep_trials(spec)
    assert len(trials) >= 8
    for trial in trials:
        # The agent's own formatting of the arguments (wandb's code, not a copy of it).
        args = create_sweep_command_args({"args": {k: {"value": v} for k, v in trial.items()}})
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=["paths.output_dir=/tmp/unused",
                                               *args["args_no_hyphens"]])
        validate(cfg)
        assert cfg.model.lr == pytest.approx(trial["lr"])
        assert list(cfg.model.hidden_sizes) == trial["model.hidden_sizes"]
        assert cfg.model.dropout == trial["model.dropout"]
