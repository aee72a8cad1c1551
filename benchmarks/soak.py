"""Seeded soak under faults: concurrent promoters (some SIGKILLed mid-promotion) and readers
on one promoted folder, then a training run SIGKILLed at random moments and resumed until it
finishes. Every model ever promoted must stay in the folder (live or in ``history/``), every
read must see model.ckpt and model.json describing the same model, and the resumed run must
finish with every checkpoint loadable, one W&B run and each epoch once in metrics.csv.
Prints counts; exits 1 if anything was lost or seen inconsistent. ~1.5 min on 2 cores.

    python -m benchmarks.soak
"""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

PROMOTERS, ROUNDS, KILLS, SEED, EPOCHS = 4, 15, 3, 0, 20  # KILLS: promoters and trainings
TRAIN_OVERRIDES = ("data.split.train=1000 data.split.val=200 data.split.test=200 data.redraw=0 "
                   "augment=none callbacks.early_stopping=null ckpt_path=last confidence=null")
# The counts of a soak that lost nothing; any other value fails it.
CLEAN = {"models lost": 0, "temporary files left": 0, "inconsistent reads": 0, "read errors": 0,
         "finished": 1, "unloadable checkpoints": 0, "W&B runs": 1,
         "epochs logged twice or missing": 0}


def _fingerprint(checkpoint: dict) -> str:
    weight = checkpoint["state_dict"]["net.0.weight"]
    return f"{float(weight.sum()):.6f}:{float(weight[0, :5].sum()):.6f}"


def _promoter(args: tuple[list[str], Path, int, Path]) -> list[str]:
    """Promote the given runs (forced at random); return fingerprints actually promoted."""
    from handwriting.inference import read_checkpoint
    from handwriting.promotion import promote
    from handwriting.runs import Candidate

    runs, target, seed, log_path = args
    rng, promoted = random.Random(seed), []
    for run in runs:
        candidate = Candidate.from_run_dir(run)
        if promote(candidate, target, force=rng.random() < 0.3).promoted:
            promoted.append(_fingerprint(read_checkpoint(candidate.checkpoint)))
            with open(log_path, "a") as log:  # survives a kill of this process
                log.write(promoted[-1] + "\n")
    return promoted


def _reader(target: Path, stop, queue: mp.Queue) -> None:
    from handwriting.inference import ModelLoadError
    from handwriting.promoted_dir import read_promoted

    reads = inconsistent = errors = 0
    while not stop.is_set():
        try:
            seen = read_promoted(target)
        except ModelLoadError:  # nothing promoted yet
            errors += 1
            continue
        reads += 1
        if seen.copy is None or seen.copy["metrics"] != seen.metadata["metrics"]:
            inconsistent += 1
    queue.put((reads, inconsistent, errors))


def soak_promotion(work: Path) -> dict[str, int]:
    from handwriting.inference import read_checkpoint
    from handwriting.promoted_dir import HISTORY, MODEL_FILE
    from tests.helpers import make_run_dir

    rng = random.Random(SEED)
    runs = [str(make_run_dir(work / "runs" / f"{i}", round(rng.uniform(0.5, 0.99), 3), seed=i))
            for i in range(PROMOTERS * ROUNDS)]
    target, log_path = work / "promoted", work / "promoted.log"
    ctx = mp.get_context("fork")
    queue, stop, killed = ctx.Queue(), ctx.Event(), 0
    _promoter((runs[:1], target, SEED, log_path))  # readers find a model from the start
    readers = [ctx.Process(target=_reader, args=(target, stop, queue)) for _ in range(2)]
    victims = [ctx.Process(target=_promoter, args=(
        ((runs * 3)[i::KILLS + 1], target, SEED + 100 + i, log_path),)) for i in range(KILLS)]
    for process in readers + victims:
        process.start()
    with ctx.Pool(PROMOTERS) as pool:
        result = pool.map_async(_promoter, [(runs[i::PROMOTERS], target, SEED + i, log_path)
                                            for i in range(PROMOTERS)])
        for victim in victims:
            time.sleep(rng.uniform(0.2, 1.5))
            if victim.is_alive():
                victim.kill()  # SIGKILL
                killed += 1
        result.get()
    for victim in victims:
        victim.join()
    _promoter((runs[:1], target, SEED, log_path))  # one more promoter after the last kill
    stop.set()
    totals = [queue.get() for _ in readers]  # (reads, inconsistent, errors) of each reader
    reads, inconsistent, errors = (sum(column) for column in zip(*totals, strict=True))
    for reader in readers:
        reader.join()
    kept = [target / MODEL_FILE, *(target / HISTORY).glob("*.ckpt")]
    present = {_fingerprint(read_checkpoint(path)) for path in kept}
    promoted = set(log_path.read_text().split())
    return {"promotions": len(promoted), "promoters killed": killed, "models kept": len(present),
            "models lost": len(promoted - present),
            "temporary files left": len(list(target.glob(".*.tmp"))),
            "reads": reads, "inconsistent reads": inconsistent, "read errors": errors}


def soak_training(work: Path) -> dict[str, int]:
    import torch

    rng, run_dir = random.Random(SEED), work / "train"
    done = killed = 0
    args = [sys.executable, "train.py", f"hydra.run.dir={run_dir}",
            f"promote.dir={work / 'train-promoted'}", f"trainer.max_epochs={EPOCHS}",
            *TRAIN_OVERRIDES.split()]
    env = os.environ | {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    for attempt in range(KILLS + 5):
        started = time.time()
        proc = subprocess.Popen(args, cwd=common.ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        if attempt < KILLS:
            # Once this attempt has written a checkpoint, kill it at a random moment: mid-epoch,
            # mid-checkpoint-write or mid-report.
            last = run_dir / "checkpoints" / "last.ckpt"
            while proc.poll() is None and not (last.is_file() and last.stat().st_mtime > started):
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.0))
            if proc.poll() is None:
                proc.kill()
                killed += 1
        _, err = proc.communicate(timeout=900)
        if proc.returncode == 0 and (run_dir / "run.json").is_file():
            done = 1
            break
        if proc.returncode not in (0, -signal.SIGKILL):
            print(err.decode()[-2000:], file=sys.stderr)
    bad = 0
    for path in (run_dir / "checkpoints").glob("*"):
        try:
            torch.load(path, weights_only=True)
        except Exception:
            bad += 1
    summary = json.loads((run_dir / "run.json").read_text()) if done else {}
    with open(run_dir / "csv" / "metrics.csv") as handle:
        logged = [int(r["epoch"]) for r in csv.DictReader(handle) if r.get("train/acc")]
    wandb_ids = {p.name.rsplit("-", 1)[1] for p in (run_dir / "wandb").glob("offline-run-*")}
    return {"training kills": killed, "finished": done,
            "epochs reached": int(summary.get("metrics", {}).get("epochs", 0)),
            "unloadable checkpoints": bad, "W&B runs": len(wandb_ids),
            "epochs logged twice or missing": int(logged != list(range(EPOCHS)))}


def main() -> int:
    common.cli(__doc__, threads=False, json_out=False).parse_args()  # --help only
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        counts = soak_promotion(Path(tmp)) | soak_training(Path(tmp))
    width = max(map(len, counts))
    for name, value in counts.items():
        print(f"{name:<{width}}  {value}")
    return 1 if any(counts[name] != value for name, value in CLEAN.items()) else 0


if __name__ == "__main__":
    sys.exit(main())
