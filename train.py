"""Train a handwriting model: `python train.py [overrides]`, `python train.py --multirun ...`.

See README.md for the options; `python train.py --help` lists the config groups.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HANDWRITING_ROOT", str(Path(__file__).resolve().parent))
os.environ.setdefault("WANDB_MODE", "offline")  # never reach the network unless asked to

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from handwriting.config import register_configs  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from handwriting.training import train

    metrics = train(cfg)
    # The value Optuna (and other sweepers) maximize: validation accuracy, never test.
    return float(metrics.get("val/acc", 0.0))


if __name__ == "__main__":
    main()
