"""A small network that tells digits from junk, stored beside the digit model.

Why a separate detector and not an eleventh class or the classifier's own scores: it
can be fitted to any promoted model after training (``handwriting calibrate``), it
leaves the classifier's classes and accuracy untouched, and it is measured on its own.
The classifier's softmax alone refused too little junk: a ten-way softmax is trained
to be sure of one of ten digits, whatever it is shown (see benchmarks/CONFIDENCE.md).

It sees exactly the 28x28 input the classifier sees, so whatever the app's
preprocessing does to a photo or a scribble, the detector judges the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

SIZES = (784, 256, 128, 1)  # fixed: a stored detector is checked against it before use


def _network() -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(SIZES) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _as_float(images: np.ndarray) -> torch.Tensor:
    array = np.asarray(images)
    x = torch.as_tensor(array, dtype=torch.float32).reshape(len(array), -1)
    return x / 255.0 if array.dtype == np.uint8 else x


class JunkDetector:
    """``junk_probability(images)``: per 28x28 input, the probability that it is not a
    digit. Images are uint8 in [0, 255] or floats in [0, 1], white ink on black."""

    def __init__(self, network: nn.Sequential | None = None) -> None:
        self.network = (network or _network()).eval()

    @torch.inference_mode()
    def junk_probability(self, images: np.ndarray) -> np.ndarray:
        if len(images) == 0:
            return np.zeros(0)
        return torch.sigmoid(self.network(_as_float(images))[:, 0]).double().numpy()

    def to_dict(self) -> dict[str, Any]:
        return {"sizes": list(SIZES), "state_dict": {k: v.clone() for k, v in self.network.state_dict().items()}}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> JunkDetector:
        """Shapes are checked against ``SIZES`` before anything is built (a crafted file
        cannot make us allocate what it likes)."""
        if list(stored.get("sizes", [])) != list(SIZES):
            raise ValueError(f"detector sizes {stored.get('sizes')} are not {list(SIZES)}")
        network = _network()
        expected = {k: tuple(v.shape) for k, v in network.state_dict().items()}
        state = dict(stored.get("state_dict", {}))
        got = {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}
        if got != expected:
            raise ValueError(f"detector weights have shapes {got}, expected {expected}")
        network.load_state_dict(state, strict=True)
        return cls(network)


def train_detector(digits: np.ndarray, junk: np.ndarray, seed: int = 0, epochs: int = 30,
                   batch_size: int = 256, lr: float = 1e-3) -> JunkDetector:
    """Fit on ``digits`` (label 0) against ``junk`` (label 1), classes weighted equally
    however many of each there are. Seeded: the same inputs give the same detector."""
    if len(digits) == 0 or len(junk) == 0:
        raise ValueError("the junk detector needs both digits and junk to learn from")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    network = _network()
    x = torch.cat([_as_float(digits), _as_float(junk)])
    y = torch.cat([torch.zeros(len(digits)), torch.ones(len(junk))])
    weight = torch.where(y > 0, len(x) / (2.0 * len(junk)), len(x) / (2.0 * len(digits)))
    optimizer = torch.optim.Adam(network.parameters(), lr=lr, weight_decay=1e-5)
    network.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            batch = order[start:start + batch_size]
            # Shift by up to 2 px: the preprocessing centres by mass, not exactly.
            dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=generator))
            images = torch.roll(x[batch].reshape(-1, 28, 28), shifts=(dy, dx), dims=(1, 2))
            logits = network(images.reshape(len(batch), -1))[:, 0]
            loss = nn.functional.binary_cross_entropy_with_logits(logits, y[batch], weight=weight[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return JunkDetector(network)
