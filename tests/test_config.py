"""Every config composes and instantiates; bad values fail before training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from handwriting.config import register_configs, validate
from handwriting.data.datamodule import HandwritingDataModule

ROOT = Path(__file__).resolve().parents[1]
register_configs()


def compose_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/unused", *overrides])


@pytest.mark.parametrize("data", ["embedded", "mnist", "csv", "folder", "emnist"])
def test_data_configs_compose(data: str) -> None:
    cfg = compose_cfg(f"data={data}")
    assert cfg.data._target_.endswith("HandwritingDataModule")
    assert "_target_" in cfg.data.source


@pytest.mark.parametrize("group", ["trainer=ddp", "trainer=gpu", "logger=csv", "augment=elastic",
                                   "augment=affine", "augment=canvas"])
def test_option_configs_compose(group: str) -> None:
    compose_cfg(group)


def test_default_config_builds_every_part() -> None:
    cfg = compose_cfg()
    validate(cfg)
    dm = instantiate(cfg.data, _convert_="all")
    assert isinstance(dm, HandwritingDataModule)
    dm.setup()
    assert dm.sizes() == {"train": 8000, "val": 1000, "test": 1000}
    model = instantiate(cfg.model, num_classes=dm.num_classes, _convert_="all")
    assert model.hparams["hidden_sizes"] == [128, 128] and model.hparams["lr"] == 0.001
    for cb in cfg.callbacks.values():
        instantiate(cb)


def test_shortcuts_reach_the_model() -> None:
    cfg = compose_cfg("lr=0.01", "model.hidden_sizes=[256,128]", "data.split.train=2000")
    assert cfg.model.lr == 0.01 and list(cfg.model.hidden_sizes) == [256, 128]
    assert cfg.data.split.train == 2000


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lr=0", "lr must be > 0"),
        ("lr=-0.1", "lr must be > 0"),
        ("model.hidden_sizes=[]", "at least one layer"),
        ("model.dropout=1.5", "dropout"),
        ("model.hidden_sizes=[a,b]", "hidden_sizes must be positive integers"),
        ("model.lr=fast", "lr must be a number"),
        ("model.label_smoothing=1", "label_smoothing"),
        ("+model.hiden=64", "model.hiden is not a setting of handwriting.model.MLPClassifier"),
        ("+data.foo=1", "data.foo is not a setting"),
        ("data.batch_size=0", "batch_size"),
        ("trainer.max_epochs=0", "max_epochs"),
        ("data.split.val=-5", "split.val"),
        ("threads=0", "threads"),
    ],
)
def test_invalid_values_are_rejected(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate(compose_cfg(override))


def test_the_model_config_names_only_what_the_constructor_takes() -> None:
    """conf/model/mlp.yaml names values; MLPClassifier's signature is their one home."""
    import inspect

    from handwriting.model import MLPClassifier

    settings = set(compose_cfg().model) - {"_target_"}
    assert settings <= set(inspect.signature(MLPClassifier).parameters)


@pytest.mark.parametrize("override", ["lr=fast", "model.hiden_sizes=[1]", "seed=x"])
def test_wrong_types_and_typos_fail_at_composition(override: str) -> None:
    with pytest.raises(ConfigCompositionException):
        compose_cfg(override)


def test_split_larger_than_data_fails_at_setup() -> None:
    cfg = compose_cfg("data.split.train=9500")
    dm = instantiate(cfg.data, _convert_="all")
    with pytest.raises(ValueError, match="only 10000"):
        dm.setup()


def test_experiment_configs_compose() -> None:
    experiments = sorted(p.stem for p in (ROOT / "experiments" / "experiment").glob("*.yaml"))
    assert experiments, "no experiment configs"
    for name in experiments:
        cfg = compose_cfg(f"+experiment={name}")
        validate(cfg)
        OmegaConf.to_container(cfg.model, resolve=True)


def test_cli_rejects_bad_value_before_training(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "train.py", "lr=-1", f"hydra.run.dir={tmp_path}/run",
         f"promote.dir={tmp_path}/promoted"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "lr must be > 0" in result.stderr + result.stdout
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not (tmp_path / "promoted" / "model.ckpt").exists()


class _NeverLoaded:
    def load(self):  # pragma: no cover - the point is that it is not called
        raise AssertionError("the split spec must be checked before any data is loaded")


@pytest.mark.parametrize(
    ("split", "message"),
    [({"val": -5}, "data.split.val must be >= 0"), ({"val": True}, "data.split.val must be a size"),
     ({"test": 0.0}, "a fraction must be in"), ({"test": 2.5}, "whole number"),
     ({"vall": 0.1}, "unknown keys")],
)
def test_split_spec_is_checked_once_by_the_constructor(split: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HandwritingDataModule(_NeverLoaded(), split=split)


def test_batch_size_is_checked_by_the_constructor() -> None:
    with pytest.raises(ValueError, match="data.eval_batch_size must be > 0"):
        HandwritingDataModule(_NeverLoaded(), eval_batch_size=0)
