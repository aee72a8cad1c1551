"""Train a handwriting model: `python train.py [overrides]`, `python train.py --multirun ...`.

See README.md for the options; `python train.py --help` lists the config groups.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HANDWRITING_ROOT", str(Path(__file__).resolve().parent))
os.environ.setdefault("WANDB_MODE", "offline")  # never reach the network unless asked to

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from handwriting.config import register_configs  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from handwriting.training import USER_FAULTS, train

    try:
        metrics = train(cfg)
    except USER_FAULTS as exc:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweep records this job as failed and goes on
        # A bad value, a full disk, a diverging run: the message says it all, no traceback.
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    # The value Optuna (and other sweepers) maximize: validation accuracy, never test.
    return float(metrics.get("val/acc", 0.0))


if __name__ == "__main__":
    main()
