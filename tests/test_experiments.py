"""Experiment tooling on tiny sizes: RESULTS.md tables from fabricated runs (exact values),
the experiment registry (commands and configs), and the drawn-digit robustness benchmark
on a small trained model and 50 digits. Nothing here depends on speed or trains for long."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir

from benchmarks import canvas_robustness
from benchmarks.common import run_main
from handwriting.config import register_configs, validate
from handwriting.data.embedded import EmbeddedMNIST
from handwriting.inference import Predictor
from handwriting.model import MLPClassifier

ROOT = Path(__file__).resolve().parents[1]
register_configs()


def load_script(name: str) -> ModuleType:
    """experiments/ is a folder of scripts, not a package: import them by path."""
    experiments = str(ROOT / "experiments")
    if experiments not in sys.path:
        sys.path.insert(0, experiments)
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


make_results = load_script("make_results")
run_experiments = load_script("run_experiments")


# --------------------------------------------------------------------------- make_results


def fake_run(run_dir: Path, seed: int, val: float, test: float, seconds: float,
             overrides: list[str], source: str = "mnist", official: float | None = None,
             epochs: int = 10, best_epoch: int = 7, hidden: tuple[int, ...] = (128, 128),
             drawn: tuple[float, float] | None = None) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*overrides, f"seed={seed}"]))
    summary = {
        "metrics": {"val/acc": val, "test/acc": test, "train/acc": 0.99, "epochs": float(epochs),
                    "train_seconds": seconds,
                    **({"drawn/acc": drawn[0], "drawn/worst_writer_acc": drawn[1]} if drawn else {})},
        "best_checkpoint": str(run_dir / "checkpoints" / f"epoch{best_epoch - 1:03d}-val_acc{val:.4f}.ckpt"),
        "config": {"seed": seed, "lr": 0.001,
                   "model": {"hidden_sizes": list(hidden), "lr": 0.001, "dropout": 0.0,
                             "batch_norm": False, "scheduler": "none"},
                   "data": {"batch_size": 128, "augment": None},
                   "trainer": {"max_epochs": epochs}},
        "data_fingerprint": "abc",
        "data_source": source,
        "sizes": {"train": 55000, "val": 5000, "test": 10000},
    }
    (run_dir / "run.json").write_text(json.dumps(summary))
    if official is not None:
        (run_dir / "official_test.json").write_text(json.dumps({"acc": official, "n": 10000}))


@pytest.fixture
def fabricated(tmp_path: Path) -> Path:
    out = tmp_path / "experiments"
    ref = ["+experiment=reference", "data=mnist"]
    # float32 metrics as Lightning logs them: 0.97 is stored as 0.9699999690055847.
    for i, (seed, val, test, sec) in enumerate([(1, 0.97, 0.9699999690055847, 100.0),
                                                 (2, 0.98, 0.98, 110.0), (3, 0.99, 0.99, 120.0)]):
        fake_run(out / "reference_mnist" / str(i), seed, val, test, sec, ref)
    (out / "reference_mnist" / "experiment.json").write_text(json.dumps(
        {"command": "nice -n 10 python train.py --multirun +experiment=reference data=mnist "
                    "seed=1,2,3", "threads": 1}))
    # One sweep holding two configurations, trained on embedded data, with cross-evaluation.
    for i, (hidden, seed, test, official) in enumerate([
        ((800,), 1, 0.96, 0.95), ((800,), 2, 0.98, 0.97),
        ((800, 800), 1, 0.90, 0.91),
    ]):
        fake_run(out / "arch_pick_embedded" / str(i), seed, 0.9, test, 50.0,
                 ["+experiment=strong_mlp", f"model.hidden_sizes=[{','.join(map(str, hidden))}]"],
                 source="embedded", official=official, hidden=hidden)
    # The app model: real drawings by held-out writers beside the MNIST test accuracy.
    for i, (seed, drawn) in enumerate([(1, (0.98, 0.95)), (2, (0.99, 0.96))]):
        fake_run(out / "app_model" / str(i), seed, 0.99, 0.994, 300.0, ["+experiment=app_model"],
                 drawn=drawn)
    return out


def test_make_results_tables_hold_the_right_numbers(fabricated: Path, tmp_path: Path) -> None:
    target = tmp_path / "RESULTS.md"
    assert make_results.main(["--output-dir", str(fabricated), "--out", str(target), "--no-machine"]) == 0
    text = target.read_text()
    assert text.startswith("# Experiment results") and "GENERATED" in text
    summary = text.split("## Summary")[1].split("## Per experiment")[0]
    ref_row = next(line for line in summary.splitlines() if line.startswith("| reference_mnist"))
    cells = [c.strip() for c in ref_row.strip("|").split("|")]
    # val and test 97/98/99 -> mean 98.00, sample std 1.00; min/max; target 97.5 met.
    assert cells[1] == "mnist 55,000/5,000/10,000" and cells[2] == "3"
    assert cells[3] == "98.00 ± 1.00" and cells[4] == "98.00 ± 1.00"
    assert cells[5] == "97.00 / 99.00" and cells[7] == "97.5: met"
    assert cells[8] == ""  # never scored on real drawings
    assert cells[9] == "10 (7)" and cells[10] == "110 s (100-120)"
    app_row = next(line for line in summary.splitlines() if line.startswith("| app_model"))
    drawn_cell = [c.strip() for c in app_row.strip("|").split("|")][8]
    # drawn 98/99 -> 98.50 (target 98.5 met), worst writer 95/96 -> 95.50 (target 95 met)
    assert drawn_cell == "98.50 ± 0.71 (worst writer 95.50 ± 0.71); target 98.5 / 95: met"
    # Two configurations in one sweep are two groups, each with its own statistics.
    rows = [line for line in summary.splitlines() if line.startswith("| arch_pick_embedded")]
    assert len(rows) == 2
    one_layer = next(r for r in rows if "[800]`" in r)
    assert "97.00 ± 1.41" in one_layer  # test 96/98 -> std sqrt(2)
    assert "96.00 ± 1.41" in one_layer  # official 10k test 95/97
    two_layer = next(r for r in rows if "[800,800]`" in r)
    assert "| 90.00 |" in two_layer and "| 91.00 |" in two_layer  # one seed: no spread shown
    # Per-experiment section: the recorded command and per-seed rows.
    section = text.split("### reference_mnist")[1].split("###")[0]
    assert "OMP_NUM_THREADS=1 nice -n 10 python train.py --multirun +experiment=reference" in section
    assert "| 2 | 98.00 | 98.00 | 99.00 | 10 | 7 | 110 s | 11.0 |" in section
    # Registry experiments say how to run them again with today's configs.
    assert "`python experiments/run_experiments.py --mnist-dir $MNIST run reference_mnist`" in section
    assert 'data.source.cache_dir="$MNIST"' in section
    # Commands are rebuilt from Hydra's overrides when run_experiments.py did not record one.
    assert "model.hidden_sizes=[800]" in text


def test_make_results_fails_clearly_without_runs(tmp_path: Path, capsys) -> None:
    assert make_results.main(["--output-dir", str(tmp_path / "missing"), "--no-machine"]) == 2
    assert "run_experiments.py" in capsys.readouterr().err


def test_stats_use_the_sample_standard_deviation() -> None:
    stats = make_results.Stats.of([0.5, None, 0.7, float("nan")])
    assert stats is not None and stats.n == 2 and stats.mean == pytest.approx(0.6)
    assert stats.std == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert make_results.Stats.of([None]) is None


# --------------------------------------------------------------------------- run_experiments


def test_run_commands_never_promote_and_sweep_seeds(tmp_path: Path, capsys) -> None:
    assert run_experiments.main(["--output-dir", str(tmp_path), "--mnist-dir", str(tmp_path),
                                 "run", "reference_mnist", "strong_mnist", "--dry-run"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("$ ")]
    assert len(lines) == 2
    for line in lines:
        assert "promote.enabled=false" in line and "logger=csv" in line and "seed=1,2,3" in line
        assert f"data.source.cache_dir={tmp_path}" in line and line.startswith("$ nice -n 10 ")
    assert not any(tmp_path.iterdir())  # a dry run creates nothing
    assert run_experiments.main(["run", "no_such_experiment", "--dry-run"]) == 2


def first_value(override: str) -> str:
    """``key=a,b`` (a Hydra sweep) -> ``key=a``; commas inside [...] belong to one value."""
    key, _, value = override.partition("=")
    depth = 0
    for i, char in enumerate(value):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            return f"{key}={value[:i]}"
    return override


@pytest.mark.parametrize("name", sorted(run_experiments.EXPERIMENTS))
def test_every_experiment_composes(name: str) -> None:
    experiment = run_experiments.EXPERIMENTS[name]
    args = experiment.train_args((1, 2), None, Path("/tmp/unused"), None)
    overrides = [first_value(o) for o in args if not o.startswith("hydra.")]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["paths.output_dir=/tmp/unused", *overrides])
    validate(cfg)
    assert cfg.promote.enabled is False and list(cfg.logger) == ["csv"]


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

    from handwriting.promotion import SELECTION_METRIC
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


# --------------------------------------------------------------------------- canvas robustness


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 784-32-10 MLP trained for a few seconds on 2,000 embedded digits (not the test ones)."""
    torch.manual_seed(0)
    data = EmbeddedMNIST().load().train
    x = torch.from_numpy(data.images[-2000:].reshape(-1, 784).astype(np.float32) / 255.0)
    y = torch.from_numpy(data.labels[-2000:].astype(np.int64))
    model = MLPClassifier(hidden_sizes=(32,))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(4):
        for batch in torch.randperm(len(x)).split(64):
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    path = tmp_path_factory.mktemp("tiny") / "tiny.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    return path


def test_canvas_set_spreads_digits_over_pen_widths() -> None:
    test = EmbeddedMNIST().load().train.subset(np.arange(8))
    cs = canvas_robustness.make_canvas_set(test.images, test.labels, seed=3)
    assert cs.drawn.shape == cs.plain.shape == cs.plain_app.shape == (8, 28, 28)
    assert np.bincount(cs.pen_bucket, minlength=4).tolist() == [2, 2, 2, 2]
    for width, bucket in zip(cs.pen_width, cs.pen_bucket, strict=True):
        lo, hi = canvas_robustness.PEN_BUCKETS[bucket]
        assert lo <= width <= hi
    assert np.all(cs.input_width > 0) and np.all(cs.drawn.max(axis=(1, 2)) > 0.9)
    # Redrawn strokes are uniform: the digit changes, unlike the plain view.
    assert not np.allclose(cs.drawn, cs.plain_app, atol=0.1)
    again = canvas_robustness.make_canvas_set(test.images, test.labels, seed=3)
    assert np.array_equal(again.drawn, cs.drawn)  # seeded


def test_canvas_robustness_on_a_tiny_model(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "canvas.json"
    args = ["--model", f"tiny={tiny_checkpoint}", "--n", "50", "--seed", "1", "--json-out", str(out)]
    assert run_main(canvas_robustness.main, args) == 0
    printed = capsys.readouterr().out
    assert "drawn %" in printed and "tiny" in printed and "by canvas pen width" in printed
    payload = json.loads(out.read_text())
    result = payload["results"]["tiny"]
    assert payload["config"]["n"] == 50 and result["n_models"] == 1
    for key in ("plain", "plain_app", "drawn"):
        assert 0.0 <= result[key]["mean"] <= 1.0
    assert result["gap"]["mean"] == pytest.approx(result["plain"]["mean"] - result["drawn"]["mean"])
    assert result["plain"]["mean"] > 0.3 and result["drawn"]["mean"] > 0.2  # beats chance (0.1)
    buckets = result["by_pen_width"]
    assert sum(b["n"] for b in buckets.values()) == 50
    assert sum(b["n"] for b in result["by_input_width"].values()) == 50
    # Drawn-only errors: digits read as scans but not when drawn; one model shares all of its own.
    errors = payload["runs"]["tiny"][0]["drawn_only_errors"]
    assert all(0 <= i < 50 for i in errors) and payload["shared_drawn_errors"]["indices"] == errors
    assert len(errors) >= round(50 * result["gap"]["mean"])
    low, high = result["gap_ci95"]
    assert low <= result["gap"]["mean"] <= high and "gap 95% CI" in printed
    # The per-bucket accuracies average back to the overall one.
    weighted = sum(b["drawn"] * b["n"] for b in buckets.values()) / 50
    assert weighted == pytest.approx(result["drawn"]["mean"])


def test_gap_interval_comes_from_paired_per_digit_differences() -> None:
    # 4 digits, two checkpoints: per-digit mean differences 1, 0.5, -0.5, 0 -> mean 0.25.
    runs = [
        {"n": 4, "drawn_only_errors": [0, 1], "plain_only_errors": [2]},
        {"n": 4, "drawn_only_errors": [0], "plain_only_errors": []},
    ]
    low, high = canvas_robustness.gap_ci95(runs)
    per_digit = np.array([1.0, 0.5, -0.5, 0.0])
    half = 1.96 * per_digit.std(ddof=1) / 2
    assert (low, high) == pytest.approx((0.25 - half, 0.25 + half))
    assert canvas_robustness.gap_ci95([{"n": 4, "drawn_only_errors": []}]) is None  # old JSON


def test_batched_scoring_matches_the_apps_predictor(tiny_checkpoint: Path) -> None:
    from benchmarks.strokes import redraw_as_strokes
    from handwriting.preprocessing import prepare_canvas

    predictor = Predictor.from_checkpoint(tiny_checkpoint)
    digit = EmbeddedMNIST().load().train.images[0]
    canvas = redraw_as_strokes(digit, np.random.default_rng(0), background="black")
    batched = predictor.probabilities(prepare_canvas(canvas)[None])[0]
    assert np.allclose(predictor.predict_canvas(canvas).probabilities, batched, atol=1e-6)


def test_canvas_robustness_rejects_missing_model(tmp_path: Path, capsys) -> None:
    assert run_main(canvas_robustness.main, ["--model", f"x={tmp_path / 'nope'}"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(("test_acc", "verdict"), [(0.9929999709129333, "met"), (0.9925, "NOT met")])
def test_target_is_judged_at_the_precision_shown(tmp_path: Path, test_acc: float, verdict: str) -> None:
    fake_run(tmp_path / "run", 1, 0.99, test_acc, 1.0, ["+experiment=strong_mlp"])
    group = make_results.Group("strong_mnist", "", [make_results.read_run(tmp_path / "run")])
    assert make_results.target_cell(group) == f"99.3: {verdict}"
