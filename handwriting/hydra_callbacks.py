"""Hydra callbacks: after a --multirun sweep, print its ranked summary and promote its best run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepSummaryCallback(Callback):
    def __init__(self, promote: bool = True) -> None:
        self.promote = promote

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from handwriting.promoted_dir import PromotionError
        from handwriting.sweep import summarize

        sweep_dir = Path(config.hydra.sweep.dir)
        promote_to = config.promote.dir if self.promote and config.promote.enabled else None
        try:
            summarize(sweep_dir, promote_to=promote_to, force=False)
        # Every job failed, or the promoted folder is full or read-only: say so in words
        # instead of crashing the finished sweep (its runs can be promoted later).
        except (ValueError, PromotionError) as exc:
            print(f"sweep summary: {exc}")
