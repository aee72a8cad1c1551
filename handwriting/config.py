"""The run's config: the schema of its top-level keys, and :func:`build`, which turns a
config node into the object it names.

Each setting's default and check live in the constructor that takes it
(``MLPClassifier``, ``HandwritingDataModule``, the data sources): ``conf/*.yaml`` only names
the values a run uses. Hydra checks the top-level keys' types when the config loads, and a
key that is not in the config fails then too (``model.hiden_sizes=[1]``); a key added with
``+`` that the constructor does not take fails in :func:`build`. :func:`validate` builds
the parts once before any data is loaded, so a bad value fails before a download or an
epoch, with one ``ValueError`` naming the key.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import MISSING, DictConfig, OmegaConf


# The schema holds the top-level keys' types; their values live in conf/config.yaml only
# (MISSING here: one home per value). Hydra refuses a value of the wrong type on load.
@dataclass
class ReportSchema:
    misclassified: int = MISSING  # the report is the run's one evaluation: it always runs


@dataclass
class PromoteSchema:
    enabled: bool = MISSING
    dir: str = MISSING
    force: bool = MISSING


@dataclass
class TrainSchema:
    task_name: str = MISSING
    seed: int = MISSING
    threads: int | None = MISSING
    lr: float = MISSING
    ckpt_path: str | None = MISSING
    model: Any = MISSING  # conf/model/*.yaml; MLPClassifier checks it (config.build)
    report: ReportSchema = field(default_factory=ReportSchema)
    promote: PromoteSchema = field(default_factory=PromoteSchema)
    data: Any = MISSING
    trainer: Any = MISSING
    logger: Any = None
    callbacks: Any = None
    paths: Any = MISSING
    pendigits: Any = None
    drawn: Any = None
    confidence: Any = None
    experiment_name: str | None = None  # set by experiments/experiment/*.yaml


def gpus_for(accelerator: str, devices: Any) -> int | None:
    """GPUs per node to ask SLURM for: the trainer's devices when it trains on GPUs, none
    (``None``: no --gpus-per-node at all) on CPU nodes, where a GPU request cannot be met."""
    return int(devices) if str(accelerator) in ("gpu", "cuda") else None


def register_configs() -> None:
    ConfigStore.instance().store(name="train_schema", node=TrainSchema)
    # experiments/launcher/slurm.yaml: gpus_per_node follows trainer.accelerator.
    OmegaConf.register_new_resolver("gpus_for", gpus_for, replace=True)


_UNEXPECTED = re.compile(r"unexpected keyword argument '(?P<name>\w+)'|(?P<none>takes no arguments)")
_TARGET = re.compile(r"Error in call to target '(?P<target>[\w.]+)'")
_FULL_KEY = re.compile(r"full_key: (?P<key>\S+)")


def build(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """``instantiate(node, **kwargs)`` with the faults of the config as one ``ValueError``
    that names the key. Hydra wraps whatever a constructor raises in an
    ``InstantiationException`` (a traceback for train.py); a constructor's own ValueError
    is passed on as it is, and a key the constructor does not take (``+model.hiden=64``)
    becomes "model.hiden is not a setting of ...", listing the ones it takes."""
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ValueError):
            raise cause from None
        unexpected = _UNEXPECTED.search(str(cause)) if isinstance(cause, TypeError) else None
        target = _TARGET.search(str(exc))
        if unexpected is None or target is None:
            raise
        full_key = _FULL_KEY.search(str(exc))
        where = full_key["key"] if full_key else key
        if unexpected["none"]:
            relative = where.removeprefix(key).lstrip(".")
            given = OmegaConf.select(node, relative) if relative else node
            names = sorted(k for k in (given or {}) if k != "_target_")
            raise ValueError(f"{where} ({target['target']}) takes no settings, got "
                             f"{', '.join(names)}") from None
        raise ValueError(
            f"{where}.{unexpected['name']} is not a setting of {target['target']}; "
            f"its settings are: {', '.join(_settings(target['target']))}") from None


def _settings(target: str) -> list[str]:
    """The keyword arguments the class ``target`` takes."""
    parameters = inspect.signature(get_class(target)).parameters.values()
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def validate(cfg: DictConfig) -> None:
    """Check every value before any data is loaded: the data module and the model are built
    once and dropped (their constructors check their settings and load nothing; the model
    with a stand-in class count, since the real one comes from the data). The keys no
    constructor of this package takes are checked here."""
    threads = cfg.get("threads")
    if threads is not None and threads <= 0:
        raise ValueError(f"threads must be a positive number of CPU threads or null, got {threads}")
    # Lightning's Trainer accepts max_epochs=0 (and trains nothing): refused here.
    max_epochs = OmegaConf.select(cfg.trainer, "max_epochs")
    if max_epochs is not None and int(max_epochs) <= 0 and int(max_epochs) != -1:
        raise ValueError(f"trainer.max_epochs must be > 0, got {max_epochs}")
    build(cfg.data, "data")
    build(cfg.model, "model", num_classes=2)
