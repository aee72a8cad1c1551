"""Seeded soak under faults: concurrent promoters (some SIGKILLed mid-promotion) and readers
on one promoted folder, then a training run SIGKILLed at random moments and resumed until it
finishes. Prints counts; exits 1 if anything was lost or seen inconsistent.

    python -m benchmarks.soak                          # ~1.5 min on 2 cores

Promotion part: every model that was ever promoted must still be in the folder (live or in
``history/``): "models lost" counts those that are not. Every read goes through
``read_promoted`` and must see model.ckpt and model.json describing the same model.
Training part: after the kills, the resumed run must reach its last epoch with every
checkpoint loadable, one W&B run, and each epoch once in metrics.csv.
"""

from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parents[1]
PROMOTERS, ROUNDS, KILLS, SEED = 4, 15, 3, 0  # KILLS: promoters and trainings SIGKILLed


def _fingerprint(checkpoint: dict) -> str:
    weight = checkpoint["state_dict"]["net.0.weight"]
    return f"{float(weight.sum()):.6f}:{float(weight[0, :5].sum()):.6f}"


def _promoter(args: tuple[list[str], str, int, str]) -> list[str]:
    """Promote the given runs (forced at random); return fingerprints actually promoted."""
    runs, target, seed, log_path = args
    import torch

    from handwriting.promotion import Candidate, promote

    rng, promoted = random.Random(seed), []
    for run in runs:
        candidate = Candidate.from_run_dir(run)
        if promote(candidate, target, force=rng.random() < 0.3).promoted:
            fingerprint = _fingerprint(torch.load(candidate.checkpoint, weights_only=True))
            promoted.append(fingerprint)
            with open(log_path, "a") as log:  # survives a kill of this process
                log.write(fingerprint + "\n")
    return promoted


def _reader(target: str, stop, queue: mp.Queue) -> None:
    from handwriting.inference import ModelLoadError
    from handwriting.promotion import read_promoted

    reads = inconsistent = errors = 0
    while not stop.is_set():
        try:
            seen = read_promoted(target)
        except ModelLoadError:  # nothing promoted yet
            errors += 1
            continue
        reads += 1
        copy = seen.copy
        if copy is None or copy["metrics"] != seen.metadata["metrics"]:
            inconsistent += 1
    queue.put((reads, inconsistent, errors))


def soak_promotion(work: Path, promoters: int, rounds: int, kills: int, seed: int) -> dict[str, int]:
    from handwriting.inference import read_checkpoint
    from handwriting.promotion import HISTORY, MODEL_FILE
    from tests.helpers import make_run_dir

    rng = random.Random(seed)
    runs = [str(make_run_dir(work / "runs" / f"{i}", round(rng.uniform(0.5, 0.99), 3), seed=i))
            for i in range(promoters * rounds)]
    target, log_path = str(work / "promoted"), str(work / "promoted.log")
    ctx = mp.get_context("fork")
    queue: mp.Queue = ctx.Queue()
    stop = ctx.Event()
    _promoter((runs[:1], target, seed, log_path))  # readers find a model from the start
    readers = [ctx.Process(target=_reader, args=(target, stop, queue)) for _ in range(2)]
    for reader in readers:
        reader.start()
    jobs = [(runs[i::promoters], target, seed + i, log_path) for i in range(promoters)]
    killed = 0
    victims = [ctx.Process(target=_promoter,
                           args=(((runs * 3)[i::kills + 1], target, seed + 100 + i, log_path),))
               for i in range(kills)]
    for victim in victims:
        victim.start()
    with ctx.Pool(promoters) as pool:
        result = pool.map_async(_promoter, jobs)
        for victim in victims:
            time.sleep(rng.uniform(0.2, 1.5))
            if victim.is_alive():
                os.kill(victim.pid, signal.SIGKILL)
                killed += 1
        result.get()
    for victim in victims:
        victim.join()
    _promoter((runs[:1], target, seed, log_path))  # one more promoter after the last kill
    stop.set()
    totals = [queue.get() for _ in readers]
    for reader in readers:
        reader.join()
    folder = Path(target)
    present = {_fingerprint(read_checkpoint(p)) for p in [folder / MODEL_FILE, *(folder / HISTORY).glob("*.ckpt")]}
    promoted = set(Path(log_path).read_text().split())
    return {"promotions": len(promoted), "promoters killed": killed, "models kept": len(present),
            "models lost": len(promoted - present),
            "temporary files left": len(list(folder.glob(".*.tmp"))),
            "reads": sum(t[0] for t in totals), "inconsistent reads": sum(t[1] for t in totals),
            "read errors": sum(t[2] for t in totals)}


def soak_training(work: Path, kills: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    run_dir, epochs = work / "train", 20
    args = [sys.executable, "train.py", f"hydra.run.dir={run_dir}", f"promote.dir={work / 'train-promoted'}",
            "data.split.train=1000", "data.split.val=200", "data.split.test=200", "data.redraw=0",
            "augment=none", "callbacks.early_stopping=null", f"trainer.max_epochs={epochs}",
            "ckpt_path=last", "confidence=null"]
    env = os.environ | {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    done = killed = 0
    for attempt in range(kills + 5):
        started = time.time()
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if attempt < kills:
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
    import torch

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
            "epochs logged twice or missing": int(logged != list(range(epochs)))}


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
                            ).parse_args()  # --help only
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        work = Path(tmp)
        counts = soak_promotion(work, PROMOTERS, ROUNDS, KILLS, SEED)
        counts |= soak_training(work, KILLS, SEED)
    width = max(map(len, counts))
    for name, value in counts.items():
        print(f"{name:<{width}}  {value}")
    failed = (counts["models lost"] or counts["temporary files left"] or counts["inconsistent reads"]
              or counts["read errors"]
              or not counts["finished"] or counts["unloadable checkpoints"] or counts["W&B runs"] != 1
              or counts["epochs logged twice or missing"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
