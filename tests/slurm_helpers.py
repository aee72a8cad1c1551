"""Test-only pieces for tests/test_slurm.py that run inside the SLURM jobs (the job's
working directory is the project root, so ``tests.slurm_helpers`` imports there)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytorch_lightning as pl


class WeightsDigest(pl.Callback):
    """After fit, every rank writes a digest of its model's weights into the run dir, so
    the test can check that DDP's ranks trained one model (identical weights), not two."""

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        digest = hashlib.sha256()
        for name, tensor in sorted(pl_module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        record = {"global_rank": trainer.global_rank, "world_size": trainer.world_size,
                  "sha256": digest.hexdigest()}
        out = Path(trainer.default_root_dir) / f"weights-rank{trainer.global_rank}.json"
        out.write_text(json.dumps(record))
