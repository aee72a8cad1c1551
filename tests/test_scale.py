"""Sweeps and scale-out on the real engines: Hydra multirun (+ summary and promotion),
Optuna, the joblib/submitit launcher configs, and Lightning DDP on CPU (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from handwriting.config import register_configs
from handwriting.promoted_dir import current_metadata

ROOT = Path(__file__).resolve().parents[1]
TINY = ["trainer.max_epochs=1", "data.split.train=1000", "data.split.val=300", "data.split.test=300"]

pytestmark = pytest.mark.slow


def run(*args: str, timeout: int = 400) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_multirun_in_parallel_summarizes_and_promotes_best(tmp_path: Path) -> None:
    """A two-run sweep through the joblib launcher (two processes at once): both runs
    land, the summary ranks them, the best is promoted, one W&B group for the sweep.
    (Hydra's basic launcher runs in tests/test_experiments.py, submitit in test_slurm.py.)"""
    sweep, promoted = tmp_path / "sweep", tmp_path / "promoted"
    result = run("--multirun", "+launcher=joblib", "lr=0.00005,0.005", *TINY,
                 f"hydra.sweep.dir={sweep}", f"promote.dir={promoted}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in output
    runs = [json.loads((sweep / str(i) / "run.json").read_text()) for i in (0, 1)]
    assert [r["config"]["model"]["lr"] for r in runs] == [0.00005, 0.005]
    best = max(r["metrics"]["val/acc"] for r in runs)
    assert current_metadata(promoted)["metrics"]["val/acc"] == best
    summary = (sweep / "summary.md").read_text()
    assert "lr=0.005" in summary and "lr=5e-05" in summary
    assert summary.index("lr=0.005") < summary.index("lr=5e-05")  # ranked, best first
    assert (sweep / "summary.png").read_bytes()[:4] == b"\x89PNG"
    # one W&B group per sweep
    assert {r["wandb_group"] for r in runs} == {sweep.name}
    assert len(list(sweep.glob("*/wandb/offline-run-*"))) == 2


def test_optuna_search_runs_trials(tmp_path: Path) -> None:
    sweep = tmp_path / "optuna"
    result = run("hparams_search=optuna", "hydra.sweeper.n_trials=2", *TINY, "logger=csv",
                 f"hydra.sweep.dir={sweep}", f"promote.dir={tmp_path}/promoted")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Best value" in result.stdout + result.stderr
    assert len(list(sweep.glob("*/run.json"))) == 2
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = [json.loads((p).read_text())["metrics"]["val/acc"] for p in sweep.glob("*/run.json")]
    assert results["best_value"] == pytest.approx(max(trials))


def test_ddp_on_cpu_with_two_processes(tmp_path: Path) -> None:
    result = run("trainer=ddp", "trainer.devices=2", "trainer.max_epochs=2", "data.split.train=2000",
                 "data.split.val=300", "data.split.test=300", "logger=csv",
                 f"hydra.run.dir={tmp_path}/run", f"promote.dir={tmp_path}/promoted")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "GLOBAL_RANK: 1" in output and "MEMBER: 2/2" in output
    summary = json.loads((tmp_path / "run" / "run.json").read_text())
    assert summary["metrics"]["epochs"] == 2
    assert summary["metrics"]["test/acc"] > 0.4  # beats chance (0.1) after 2 short epochs


@pytest.mark.parametrize(("launcher", "key"), [("joblib", "n_jobs"), ("slurm", "partition")])
def test_launcher_configs_compose(launcher: str, key: str) -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"+launcher={launcher}", "paths.output_dir=/tmp/x"],
                      return_hydra_config=True)
    assert key in cfg.hydra.launcher
