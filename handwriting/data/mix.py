"""Training pools of several kinds, and the mixed source that trains on several
sources at once (MNIST, pen strokes, the drawings the app saved) with weights.

Why: a model for the app must read both the digits of the benchmark literature and
the way people actually draw; each source keeps its own split (pen digits by writer,
MNIST its official test set), validation is the union of the parts' validation sets
(so checkpoints are picked on both), and ``weight`` makes a small source count more.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from handwriting.data.download import DownloadError
from handwriting.data.split import SplitSpec, make_splits
from handwriting.data.types import LabeledImages, SourceData, StrokeSet
from handwriting.render import render_input

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MixedPool:
    """Training pools side by side; ``weights[i]`` scales how often each sample of
    ``pools[i]`` is drawn (1 = as often as any other sample)."""

    names: tuple[str, ...]
    pools: tuple[Any, ...]
    weights: tuple[float, ...]

    def __len__(self) -> int:
        return sum(len(p) for p in self.pools)

    def subset(self, indices: np.ndarray) -> MixedPool:
        indices = np.asarray(indices, dtype=np.int64)
        bounds = np.cumsum([0] + [len(p) for p in self.pools])
        pools = tuple(
            pool.subset(indices[(indices >= lo) & (indices < hi)] - lo)
            for pool, lo, hi in zip(self.pools, bounds[:-1], bounds[1:], strict=True)
        )
        return MixedPool(self.names, pools, self.weights)


def to_tensors(part: LabeledImages) -> TensorDataset:
    """uint8 (N, 28, 28) -> float (N, 784) in [0, 1], labels int64."""
    x = part.images.reshape(len(part), -1).astype(np.float32)
    x /= 255.0  # in place: no second full-size float copy
    return TensorDataset(torch.from_numpy(x), torch.from_numpy(part.labels.astype(np.int64)))


class RenderedStrokes(Dataset):
    """Pen strokes drawn anew when a batch asks for them (``dataset[list_of_indices]``), so
    every epoch sees new pen widths, sizes and wobbles of the same trajectories; with
    ``strokes.refresh`` < 1 only that share is redrawn and the rest reuse their last drawing."""

    def __init__(self, strokes: StrokeSet, seed: int) -> None:
        if not 0.0 < strokes.refresh <= 1.0:
            raise ValueError(f"refresh must be in (0, 1], got {strokes.refresh}")
        self.strokes = strokes
        self.labels = torch.from_numpy(strokes.labels.astype(np.int64))
        self.rng = np.random.default_rng(seed)
        self.drawn = np.zeros((len(strokes), 28 * 28), dtype=np.float32)
        self.fresh = np.zeros(len(strokes), dtype=bool)  # drawn at least once

    def __len__(self) -> int:
        return len(self.strokes)

    def __getitem__(self, indices: Any) -> tuple[torch.Tensor, torch.Tensor]:
        index = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        redraw = ~self.fresh[index] | (self.rng.random(len(index)) < self.strokes.refresh)
        for i in index[redraw]:
            self.drawn[i] = render_input(self.strokes.strokes[i], self.rng, self.strokes.style).ravel()
            self.fresh[i] = True
        return torch.from_numpy(self.drawn[index]), self.labels[index]

    def eval_view(self) -> TensorDataset:
        """One fixed drawing of every trajectory (for a clean train accuracy in the report)."""
        rng = np.random.default_rng(0)
        images = np.stack([render_input(s, rng, self.strokes.style) for s in self.strokes.strokes])
        return TensorDataset(torch.from_numpy(images.reshape(len(images), -1)), self.labels)


class MixedDataset(Dataset):
    """Several datasets behind one index space, read a batch (list of indices) at a time."""

    def __init__(self, parts: list[Dataset]) -> None:
        self.parts = parts
        self.bounds = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.bounds[-1])

    def __getitem__(self, indices: Any) -> tuple[torch.Tensor, torch.Tensor]:
        index = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        xs, ys = [], []
        for part, lo, hi in zip(self.parts, self.bounds[:-1], self.bounds[1:], strict=True):
            local = index[(index >= lo) & (index < hi)] - lo
            if len(local):
                x, y = part[local.tolist()]
                xs.append(x)
                ys.append(y)
        return torch.cat(xs), torch.cat(ys)

    def eval_view(self) -> TensorDataset:
        views = [eval_view(p) for p in self.parts]
        return TensorDataset(*(torch.cat([v.tensors[i] for v in views]) for i in (0, 1)))


def build_dataset(pool: Any, seed: int) -> tuple[Dataset, np.ndarray | None]:
    """The training dataset for a pool, and per-sample sampling weights (None: uniform)."""
    if isinstance(pool, LabeledImages):
        return to_tensors(pool), None
    if isinstance(pool, StrokeSet):
        return RenderedStrokes(pool, seed), None
    if isinstance(pool, MixedPool):
        parts = [build_dataset(p, seed + i)[0] for i, p in enumerate(pool.pools)]
        weights = np.concatenate([np.full(len(p), w, dtype=np.float64)
                                  for p, w in zip(pool.pools, pool.weights, strict=True)])
        return MixedDataset(parts), weights
    raise TypeError(f"unsupported training pool {type(pool).__name__}")


def eval_view(dataset: Dataset) -> TensorDataset:
    """A fixed, in-memory version of a dataset (images as they are, strokes drawn once)."""
    return dataset if isinstance(dataset, TensorDataset) else dataset.eval_view()


def _relabel(pool: Any, own: tuple[str, ...], common: tuple[str, ...], name: str) -> Any:
    """A pool's labels as indices into the common class list (matched by class name)."""
    if own == common:
        return pool
    missing = sorted(set(own) - set(common))
    if missing:
        raise ValueError(f"data part {name!r} has classes {missing} that the first part lacks "
                         f"({', '.join(common)})")
    mapping = np.array([common.index(c) for c in own], dtype=np.int64)
    if isinstance(pool, LabeledImages):
        return LabeledImages(pool.images, mapping[pool.labels])
    if isinstance(pool, StrokeSet):
        return StrokeSet(pool.strokes, mapping[pool.labels], pool.writers, pool.style, pool.refresh)
    raise TypeError(f"cannot relabel a {type(pool).__name__}")


def concat(parts: list[LabeledImages]) -> LabeledImages:
    return LabeledImages(np.concatenate([p.images for p in parts]),
                         np.concatenate([p.labels for p in parts]))


class MixedSource:
    """Several sources trained on at once (``data=mix``).

    ``parts`` maps a name to ``{"source": <source>, "weight": 1.0, "split": {...},
    "required": true}``: each part is split on its own (``split`` as in
    ``data.split``; a source's own val/test are kept), then validation is the union
    of the parts' validation sets and the test set is ``test_from``'s. A part with
    ``required: false`` whose data is missing (e.g. no saved drawings yet) is skipped
    with a warning; ``split: null`` trains on all of a part (no validation share).
    Classes are matched by name, so a folder of saved drawings holding only some
    digits joins the others.
    """

    def __init__(self, parts: Mapping[str, Mapping[str, Any]], test_from: str, split_seed: int = 0) -> None:
        if not parts:
            raise ValueError("data.source.parts is empty: name at least one source to train on")
        if test_from not in parts:
            raise ValueError(f"data.source.test_from={test_from!r} is not one of the parts {sorted(parts)}")
        for name, part in parts.items():
            unknown = set(part) - {"source", "weight", "split", "required"}
            if unknown or "source" not in part:
                raise ValueError(f"data.source.parts.{name} needs 'source' and may have weight/split/"
                                 f"required; got {sorted(part)}")
            weight = part.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
                    np.isfinite(weight) and weight > 0):
                raise ValueError(f"data.source.parts.{name}.weight must be a number > 0, got {weight!r}")
        # Each part's split spec, checked now (None: all of the part for training).
        self.split_specs = {
            name: SplitSpec.from_config(part["split"], f"data.source.parts.{name}.split")
            for name, part in parts.items() if part.get("split") is not None}
        self.parts = parts
        self.test_from = test_from
        self.split_seed = split_seed

    def load(self) -> SourceData:
        names, pools, weights, vals, classes = [], [], [], [], None
        test: LabeledImages | None = None
        for name, part in self.parts.items():
            try:
                data = part["source"].load()
            except (DownloadError, FileNotFoundError, ValueError) as error:
                if part.get("required", True) or name == self.test_from:
                    raise
                log.warning("data part %r skipped (required: false): %s", name, error)
                continue
            classes = classes or data.classes
            if part.get("split") is None and name != self.test_from:
                pool, val = _relabel(data.train, data.classes, classes, name), None
            else:
                splits = make_splits(data, self.split_specs.get(name), seed=self.split_seed)
                pool = _relabel(splits.train, data.classes, classes, name)
                val = _relabel(splits.val, data.classes, classes, name)
                if name == self.test_from:
                    test = _relabel(splits.test, data.classes, classes, name)
            names.append(name)
            pools.append(pool)
            weights.append(float(part.get("weight", 1.0)))
            if val is not None:
                vals.append(val)
        assert classes is not None and test is not None
        return SourceData(
            name="mix(" + "+".join(names) + ")",
            classes=classes,
            train=MixedPool(tuple(names), tuple(pools), tuple(weights)),
            val=concat(vals),
            test=test,
        )
