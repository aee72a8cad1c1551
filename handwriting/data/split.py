"""Seeded train/val/test splits from sizes or fractions.

Each of ``train``, ``val``, ``test`` is an int (number of images), a float in (0, 1]
(fraction of the pool) or ``None`` ("what is left"). A part the source already defines
(an official test set, an image folder's ``val/``) is taken from the source instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handwriting.data.types import LabeledImages, SourceData

SizeSpec = int | float | None


@dataclass(frozen=True)
class Splits:
    train: LabeledImages
    val: LabeledImages
    test: LabeledImages


def _resolve(name: str, spec: SizeSpec, pool: int) -> int | None:
    if spec is None:
        return None
    if isinstance(spec, bool):
        raise ValueError(f"data.split.{name} must be a size or a fraction, got {spec!r}")
    if isinstance(spec, float) and spec <= 1:
        if spec <= 0:
            raise ValueError(f"data.split.{name}={spec}: a fraction must be in (0, 1]")
        return int(round(spec * pool))
    if isinstance(spec, float) and not spec.is_integer():
        raise ValueError(f"data.split.{name}={spec}: use a whole number of images or a fraction <= 1")
    size = int(spec)
    if size < 0:
        raise ValueError(f"data.split.{name}={spec}: sizes must be >= 0")
    return size


def resolve_sizes(
    pool: int, train: SizeSpec, val: SizeSpec, test: SizeSpec, source_name: str = "data"
) -> tuple[int, int, int]:
    """Turn the split spec into exact sizes for a pool of ``pool`` images (test/val may be 0)."""
    sizes = {
        "train": _resolve("train", train, pool),
        "val": _resolve("val", val, pool),
        "test": _resolve("test", test, pool),
    }
    fixed = sum(v for v in sizes.values() if v is not None)
    if fixed > pool:
        asked = " + ".join(f"{k} {v}" for k, v in sizes.items() if v is not None)
        raise ValueError(
            f"data.split asks for {asked} = {fixed} images but {source_name} has only {pool} "
            f"to split; lower data.split.* (or use fractions such as 0.8/0.1/0.1)"
        )
    open_parts = [k for k, v in sizes.items() if v is None]
    rest = pool - fixed
    for k in open_parts:
        sizes[k] = rest // len(open_parts)
    if open_parts:
        sizes[open_parts[0]] += rest - sum(rest // len(open_parts) for _ in open_parts)
    if sizes["train"] == 0:
        raise ValueError(f"data.split leaves no training images out of {pool} in {source_name}")
    return sizes["train"], sizes["val"], sizes["test"]


def make_splits(
    data: SourceData,
    train: SizeSpec = None,
    val: SizeSpec = 0.1,
    test: SizeSpec = 0.1,
    seed: int = 0,
) -> Splits:
    """Carve the splits the source does not define out of its training pool, reproducibly."""
    val_given, test_given = data.val is not None, data.test is not None
    pool = data.train
    t, v, s = resolve_sizes(
        len(pool),
        train,
        0 if val_given else val,
        0 if test_given else test,
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
