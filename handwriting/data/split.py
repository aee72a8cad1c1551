"""Seeded train/val/test splits from sizes or fractions.

Each of ``train``, ``val``, ``test`` is an int (number of images), a float in (0, 1]
(fraction of the pool) or ``None`` ("what is left"). A part the source already defines
(an official test set, an image folder's ``val/``) is taken from the source instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from handwriting.data.types import LabeledImages, SourceData

SizeSpec = int | float | None


@dataclass(frozen=True)
class Splits:
    train: LabeledImages
    val: LabeledImages
    test: LabeledImages


@dataclass(frozen=True)
class SplitSpec:
    """How big each split is: the one home of that setting's defaults and checks. What
    needs the pool's size (does it fit, is anything left to train on) is checked when the
    data is split (:func:`resolve_sizes`); the rest here, when the config is built."""

    train: SizeSpec = None
    val: SizeSpec = 0.1
    test: SizeSpec = 0.1
    where: str = "data.split"  # the config key, for messages

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            spec = getattr(self, name)
            key = f"{self.where}.{name}"
            if spec is None:
                continue
            if isinstance(spec, bool) or not isinstance(spec, (int, float)):
                raise ValueError(f"{key} must be a size, a fraction or null, got {spec!r}")
            if spec < 0:
                raise ValueError(f"{key} must be >= 0, got {spec}")
            if isinstance(spec, float) and spec <= 1 and spec <= 0:
                raise ValueError(f"{key}={spec}: a fraction must be in (0, 1]")
            if isinstance(spec, float) and spec > 1 and not spec.is_integer():
                raise ValueError(f"{key}={spec}: use a whole number of images or a fraction <= 1")

    @classmethod
    def from_config(cls, spec: Mapping[str, SizeSpec] | None, where: str = "data.split") -> SplitSpec:
        """From a config mapping; unknown keys are refused by name."""
        spec = dict(spec or {})
        unknown = set(spec) - {"train", "val", "test"}
        if unknown:
            raise ValueError(f"{where} has unknown keys {sorted(unknown)}; use train/val/test")
        return cls(**spec, where=where)


def _resolve(spec: SizeSpec, pool: int) -> int | None:
    """Images for a spec :class:`SplitSpec` has checked: a fraction of ``pool`` or a size."""
    if spec is None:
        return None
    if isinstance(spec, float) and spec <= 1:
        return int(round(spec * pool))
    return int(spec)


def resolve_sizes(pool: int, spec: SplitSpec, source_name: str = "data") -> tuple[int, int, int]:
    """Turn the split spec into exact sizes for a pool of ``pool`` images (test/val may be 0)."""
    sizes = {name: _resolve(getattr(spec, name), pool) for name in ("train", "val", "test")}
    fixed = sum(v for v in sizes.values() if v is not None)
    if fixed > pool:
        asked = " + ".join(f"{k} {v}" for k, v in sizes.items() if v is not None)
        raise ValueError(
            f"{spec.where} asks for {asked} = {fixed} images but {source_name} has only {pool} "
            f"to split; lower {spec.where}.* (or use fractions such as 0.8/0.1/0.1)"
        )
    open_parts = [k for k, v in sizes.items() if v is None]
    rest = pool - fixed
    for k in open_parts:
        sizes[k] = rest // len(open_parts)
    if open_parts:
        sizes[open_parts[0]] += rest - sum(rest // len(open_parts) for _ in open_parts)
    if sizes["train"] == 0:
        raise ValueError(f"{spec.where} leaves no training images out of {pool} in {source_name}")
    return sizes["train"], sizes["val"], sizes["test"]


def make_splits(data: SourceData, spec: SplitSpec | None = None, seed: int = 0) -> Splits:
    """Carve the splits the source does not define out of its training pool, reproducibly."""
    spec = spec or SplitSpec()
    val_given, test_given = data.val is not None, data.test is not None
    pool = data.train
    t, v, s = resolve_sizes(
        len(pool),
        replace(spec, val=0 if val_given else spec.val, test=0 if test_given else spec.test),
        source_name=f"the {data.name} training pool",
    )
    order = np.random.default_rng(seed).permutation(len(pool))
    parts = np.split(order[: t + v + s], [t, t + v])
    train_part, val_part, test_part = (pool.subset(np.sort(idx)) for idx in parts)
    val_set = data.val if val_given else val_part
    test_set = data.test if test_given else test_part
    if len(val_set) == 0:
        raise ValueError("the validation split is empty: set data.split.val (checkpoints pick by it)")
    if len(test_set) == 0:
        raise ValueError("the test split is empty: set data.split.test")
    return Splits(train_part, val_set, test_set)
