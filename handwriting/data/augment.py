"""Batched data augmentation on tensors.

Runs on whole batches with a single ``grid_sample`` (random affine + elastic
distortion folded into one sampling grid) plus optional per-sample stroke
thickening/thinning, so augmenting every batch costs milliseconds on a CPU
instead of a per-image PIL loop.

Expects white ink on black in [0, 1] (MNIST polarity): areas that move in
from outside the frame are filled with 0 = background.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

_REFERENCE_SIDE = 28  # elastic parameters are given in pixels of a 28x28 image (Simard et al.)


def _gaussian_matrix(size: int, sigma: float) -> torch.Tensor:
    """(size, size) matrix M with ``M @ v`` = Gaussian smoothing of v, zero outside.

    Smoothing a field as ``M_h @ field @ M_w.T`` is a separable Gaussian blur done
    with two small batched matmuls, several times faster on a CPU than conv2d with
    a long 1-D kernel. Zero padding (as in the usual Simard implementations) keeps
    the displacement statistics uniform; replicating the edge would give the border
    pixels' noise many times the weight and make the corners swing wildly.
    """
    index = torch.arange(size, dtype=torch.float64)
    matrix = torch.exp(-0.5 * ((index[:, None] - index[None, :]) / sigma) ** 2)
    return (matrix / (math.sqrt(2.0 * math.pi) * sigma)).float()


class BatchAugment(nn.Module):
    """Random affine + elastic distortion + stroke-thickness augmentation for
    batches of ``(B, 784)`` or ``(B, 1, H, W)`` float images in [0, 1].

    Args:
        rotate_deg: maximum absolute rotation (degrees), sampled uniformly.
        scale: (min, max) zoom factor, sampled uniformly.
        translate: maximum shift as a fraction of the image side, per axis.
        shear_deg: maximum absolute horizontal shear (degrees).
        elastic_alpha: elastic displacement strength (Simard et al. 2003 use 34 at 28x28;
            0 disables it). Scaled with the image size.
        elastic_sigma: smoothing of the displacement field in 28x28 pixels (Simard: 4).
        thickness_p: per-sample probability of a stroke-thickness change; a changed
            sample is dilated (3x3 max, ~1 px bolder on each side) or eroded (2x2 min,
            ~1 px thinner in all) with equal chance. A 3x3 erosion would remove ~90% of
            the ink of a typical MNIST digit (strokes are ~2 px wide), i.e. erase it.
        p: per-sample probability of being augmented at all.
        seed: if given, draws come from a private ``torch.Generator`` so the sequence of
            outputs is reproducible; otherwise the global torch RNG is used.

    The module augments whenever it is called (also in eval mode): the caller decides
    where it sits, e.g. only in the training step.
    """

    def __init__(
        self,
        rotate_deg: float = 10.0,
        scale: Sequence[float] = (0.9, 1.1),
        translate: float = 0.1,
        shear_deg: float = 0.0,
        elastic_alpha: float = 0.0,
        elastic_sigma: float = 4.0,
        thickness_p: float = 0.0,
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        scale = tuple(float(s) for s in scale)  # Hydra passes ListConfig
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be (min, max) with 0 < min <= max, got {scale}")
        for name, value in (("thickness_p", thickness_p), ("p", p)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        for name, value in (
            ("rotate_deg", rotate_deg),
            ("translate", translate),
            ("shear_deg", shear_deg),
            ("elastic_alpha", elastic_alpha),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0 (it is a maximum magnitude), got {value}")
        if elastic_alpha > 0 and elastic_sigma <= 0:
            raise ValueError(f"elastic_sigma must be > 0 when elastic is on, got {elastic_sigma}")
        if shear_deg >= 90:
            raise ValueError(f"shear_deg must be < 90, got {shear_deg}")

        self.rotate_deg = float(rotate_deg)
        self.scale = scale
        self.translate = float(translate)
        self.shear_deg = float(shear_deg)
        self.elastic_alpha = float(elastic_alpha)
        self.elastic_sigma = float(elastic_sigma)
        self.thickness_p = float(thickness_p)
        self.p = float(p)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    # ------------------------------------------------------------------ helpers

    @property
    def _geometric(self) -> bool:
        return (
            self.rotate_deg > 0
            or self.scale != (1.0, 1.0)
            or self.translate > 0
            or self.shear_deg > 0
            or self.elastic_alpha > 0
        )

    @property
    def enabled(self) -> bool:
        """False when every operation is off, in which case forward is the identity."""
        return self.p > 0 and (self._geometric or self.thickness_p > 0)

    def _rand(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) on the CPU (where the generator lives)."""
        return torch.rand(*shape, generator=self.generator)

    def _uniform(self, low: float, high: float, n: int) -> torch.Tensor:
        return low + (high - low) * self._rand(n)

    def _affine_theta(self, n: int) -> torch.Tensor:
        """(n, 2, 3) output->input maps for ``affine_grid``: inverse of the random
        forward transform  x_out = T + R(angle) @ Shear @ (zoom * x_in)."""
        angle = torch.deg2rad(self._uniform(-self.rotate_deg, self.rotate_deg, n))
        shear = torch.tan(torch.deg2rad(self._uniform(-self.shear_deg, self.shear_deg, n)))
        zoom = self._uniform(*self.scale, n)
        # Normalised coordinates span 2 units per image side.
        shift = 2.0 * self.translate * (2.0 * self._rand(n, 2) - 1.0)
        cos, sin = torch.cos(angle), torch.sin(angle)
        rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
        shear_m = torch.zeros(n, 2, 2)
        shear_m[:, 0, 0] = 1.0
        shear_m[:, 0, 1] = shear
        shear_m[:, 1, 1] = 1.0
        forward = rot @ shear_m * zoom[:, None, None]
        inverse = torch.linalg.inv(forward)
        offset = -(inverse @ shift[:, :, None])
        return torch.cat([inverse, offset], dim=2)

    def _elastic(self, n: int, height: int, width: int) -> torch.Tensor:
        """(n, H, W, 2) displacement in normalised coordinates: uniform noise in
        [-1, 1] smoothed by a separable Gaussian and scaled by alpha (Simard 2003)."""
        k = height / _REFERENCE_SIDE
        sigma = self.elastic_sigma * k
        # Smoothing divides the amplitude by ~sigma, so alpha scales with k**2 to keep
        # displacements proportional to the image size.
        alpha = self.elastic_alpha * k * k
        smooth_h = _gaussian_matrix(height, sigma)
        smooth_w = smooth_h if width == height else _gaussian_matrix(width, sigma)
        field = 2.0 * self._rand(n * 2, height, width) - 1.0
        field = smooth_h @ field @ smooth_w.T
        field = alpha * field.view(n, 2, height, width).permute(0, 2, 3, 1)  # (dx, dy) in px
        return field * torch.tensor([2.0 / width, 2.0 / height])

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_floating_point(x):
            raise TypeError(f"BatchAugment expects float images in [0, 1], got dtype {x.dtype}")
        if not self.enabled or x.shape[0] == 0:
            return x
        original_shape = x.shape
        if x.dim() == 2:
            side = math.isqrt(x.shape[1])
            if side * side != x.shape[1]:
                raise ValueError(
                    f"Flat input must hold square images (e.g. 784 = 28x28), got {x.shape[1]}"
                )
            images = x.reshape(-1, 1, side, side)
        elif x.dim() == 4 and x.shape[1] == 1:
            images = x
        else:
            raise ValueError(f"Expected (B, 784) or (B, 1, H, W) input, got {tuple(x.shape)}")
        n, _, height, width = images.shape

        selected = self._rand(n) < self.p
        out = images
        if self.thickness_p > 0:
            change = (self._rand(n) < self.thickness_p) & selected
            dilate = self._rand(n) < 0.5
            # Pool only the chosen samples: max_pool2d is the costly part on a CPU.
            grow = torch.nonzero(change & dilate).flatten().to(x.device)
            shrink = torch.nonzero(change & ~dilate).flatten().to(x.device)
            if len(grow) or len(shrink):
                out = out.clone()
                out[grow] = F.max_pool2d(out[grow], 3, stride=1, padding=1)
                out[shrink] = -F.max_pool2d(F.pad(-out[shrink], (0, 1, 0, 1)), 2, stride=1)

        if self._geometric:
            theta = self._affine_theta(n)
            grid = F.affine_grid(theta, [n, 1, height, width], align_corners=False)
            if self.elastic_alpha > 0:
                grid = grid + self._elastic(n, height, width)
            grid = grid.to(device=x.device, dtype=x.dtype)
            warped = F.grid_sample(
                out, grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )
            out = torch.where(selected.to(x.device).view(n, 1, 1, 1), warped, out)

        return out.clamp(0.0, 1.0).reshape(original_shape)

    def extra_repr(self) -> str:
        return (
            f"rotate_deg={self.rotate_deg}, scale={self.scale}, translate={self.translate}, "
            f"shear_deg={self.shear_deg}, elastic_alpha={self.elastic_alpha}, "
            f"elastic_sigma={self.elastic_sigma}, thickness_p={self.thickness_p}, p={self.p}, "
            f"seed={self.seed}"
        )
