"""The README's SLURM commands on a real SLURM: a single-node cluster on this machine
(scripts/slurm_cluster.sh: munge, slurmctld, slurmd on loopback), then Hydra's submitit
launcher submits real jobs to it: a 2-job sweep (both finish, run dirs, best promoted) and
Lightning DDP across 2 SLURM tasks (one model: same weights on both ranks, one run dir,
one promotion).

Needs root and the Debian packages slurm-wlm and munge (scripts/setup.sh installs them).
When SLURM is missing or cannot start, the tests FAIL with the reason and the daemons'
logs; set HANDWRITING_SKIP_SLURM=1 to skip them instead (e.g. a laptop without root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from handwriting.config import register_configs
from handwriting.promoted_dir import current_metadata

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm_cluster.sh"
# What a user changes for their own cluster (README, "SLURM"): the partition, and requests
# that fit the node (this one has 2 CPUs and no GPU; the config asks for 4 CPUs, 32 GB).
CLUSTER = ["+launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1",
           "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10"]
TINY = ["trainer.max_epochs=1", "data.split.train=1000", "data.split.val=300",
        "data.split.test=300", "logger=csv", "drawn.enabled=false", "report.misclassified=0"]
JOB_TIMEOUT_S = 240  # a lost job (no sacct here to tell) fails the test instead of hanging it


def _cannot_run_slurm(why: str) -> None:
    if os.environ.get("HANDWRITING_SKIP_SLURM") == "1":
        pytest.skip(f"HANDWRITING_SKIP_SLURM=1: {why}")
    pytest.fail(f"SLURM tests cannot run: {why} (set HANDWRITING_SKIP_SLURM=1 to skip them)",
                pytrace=False)


@pytest.fixture(scope="module")
def slurm_conf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running single-node cluster for this module; stopped (by its pid files) after."""
    missing = [c for c in ("munged", "slurmctld", "slurmd", "sbatch", "srun")
               if shutil.which(c) is None and not Path("/usr/sbin", c).exists()]
    if missing:
        _cannot_run_slurm(f"not installed: {', '.join(missing)}; install with "
                          "`apt-get install slurm-wlm munge` (scripts/setup.sh does)")
    if os.geteuid() != 0:
        _cannot_run_slurm("needs root (slurmd runs jobs as their user)")
    cluster = tmp_path_factory.mktemp("slurm")
    start = subprocess.run(["bash", str(SCRIPT), "start", str(cluster)], capture_output=True,
                           text=True, timeout=120)
    try:
        if start.returncode != 0:
            _cannot_run_slurm(f"the cluster did not start:\n{start.stderr[-4000:]}")
        yield cluster / "slurm.conf"
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(cluster)], capture_output=True,
                       timeout=120)


def run_on_slurm(slurm_conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python train.py -m ARGS`` against the test cluster, as a user would run it."""
    # A test run inside someone's own SLURM job must not hand that job's variables on.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env |= {"SLURM_CONF": str(slurm_conf), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    try:
        return subprocess.run([sys.executable, "train.py", "-m", *CLUSTER, *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"no result within {JOB_TIMEOUT_S} s\n{diagnostics(slurm_conf, args)}\n"
                    f"{(exc.stderr or b'')[-3000:]!r}")


def diagnostics(slurm_conf: Path, args: tuple[str, ...]) -> str:
    """The daemons' logs and the jobs' stderr: what a failed SLURM test needs to show."""
    queue = subprocess.run(["squeue", "-o", "%i %j %T %R"], capture_output=True, text=True,
                           env=os.environ | {"SLURM_CONF": str(slurm_conf)}, timeout=30)
    parts = [f"---- squeue\n{queue.stdout}{queue.stderr}"]
    sweep = next((Path(a.split("=", 1)[1]) for a in args if a.startswith("hydra.sweep.dir=")), None)
    logs = sorted((slurm_conf.parent / "log").glob("*.log"))
    if sweep is not None:
        logs += sorted(sweep.glob(".submitit/*/*_log.err"))
    for log in logs:
        parts.append(f"---- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:]))
    return "\n".join(parts)


def check(result: subprocess.CompletedProcess[str], slurm_conf: Path, args: tuple[str, ...]) -> None:
    assert result.returncode == 0, (
        f"{result.stderr[-3000:]}\n{diagnostics(slurm_conf, args)}")


@pytest.mark.parametrize(("overrides", "gpus", "tasks"), [
    ([], None, 1),
    (["trainer=ddp", "trainer.devices=2"], None, 2),
    (["trainer=gpu"], 1, 1),
    (["trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=4"], 4, 4),
])
def test_slurm_launcher_asks_for_gpus_only_on_gpu_trainers(overrides: list[str], gpus: int | None,
                                                           tasks: int) -> None:
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["+launcher=slurm", "paths.output_dir=/tmp/x", *overrides],
                      return_hydra_config=True)
    assert cfg.hydra.launcher.gpus_per_node == gpus
    assert cfg.hydra.launcher.tasks_per_node == tasks


@pytest.mark.slow
def test_sweep_runs_as_slurm_jobs_and_promotes_the_best(slurm_conf: Path, tmp_path: Path) -> None:
    sweep, promoted = tmp_path / "sweep", tmp_path / "promoted"
    args = ("lr=0.00005,0.005", *TINY, f"hydra.sweep.dir={sweep}", f"promote.dir={promoted}")
    result = run_on_slurm(slurm_conf, *args)
    check(result, slurm_conf, args)
    runs = [json.loads((sweep / str(i) / "run.json").read_text()) for i in (0, 1)]
    assert [r["config"]["model"]["lr"] for r in runs] == [0.00005, 0.005]
    # Each job ran under SLURM: its own job (an array task) with submitit's files.
    submitted = sorted(p.name for p in sweep.glob(".submitit/*/*_result.pkl"))
    assert len(submitted) == 2, submitted
    assert "Submitit 'slurm' sweep output dir" in result.stdout + result.stderr
    best = max(r["metrics"]["val/acc"] for r in runs)
    assert current_metadata(promoted)["metrics"]["val/acc"] == best
    assert (sweep / "summary.md").is_file()


@pytest.mark.slow
def test_ddp_across_two_slurm_tasks_trains_one_model(slurm_conf: Path, tmp_path: Path) -> None:
    sweep, promoted = tmp_path / "ddp", tmp_path / "promoted"
    args = ("trainer=ddp", "trainer.devices=2", *TINY,
            "+callbacks.weights_digest._target_=tests.slurm_helpers.WeightsDigest",
            f"hydra.sweep.dir={sweep}", f"promote.dir={promoted}")
    result = run_on_slurm(slurm_conf, *args)
    check(result, slurm_conf, args)
    # One SLURM job with two tasks (SLURM started both ranks; Lightning did not spawn them).
    tasks = sorted(p.name for p in sweep.glob(".submitit/*/*_log.out"))
    assert [name.split("_")[1] for name in tasks] == ["0", "1"], tasks
    run_dirs = sorted(p.parent for p in sweep.glob("*/run.json"))
    assert run_dirs == [sweep / "0"]
    ranks = [json.loads((sweep / "0" / f"weights-rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["sha256"] == ranks[1]["sha256"], "the ranks ended with different weights"
    summary = json.loads((sweep / "0" / "run.json").read_text())
    assert summary["metrics"]["test/acc"] > 0.2  # trained: chance is 0.1
    # One promotion: rank 0 promoted the run; nothing was replaced (no second model).
    meta = current_metadata(promoted)
    assert Path(meta["run_dir"]) == (sweep / "0").resolve()
    assert not list(promoted.glob("history/*"))
