"""Scanned digits redrawn as pen strokes: MNIST's own writers, drawn the way the app's
canvas draws (one uniform round pen of any width, any size, slant and wobble).

Why: MNIST digits are scans of ink of varying width; a canvas drawing is a uniform
stroke of the width the slider says. Thinning each training digit to its centre line
once and drawing that line anew every epoch teaches a model the canvas's look without
any new data, so the offline default reads real drawings better.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from handwriting.data.types import LabeledImages, StrokeSet
from handwriting.render import StrokeStyle

# Like the pen strokes' training style (pen_source.TRAIN_STYLE), for centre-line clouds.
REDRAW_STYLE = StrokeStyle(rotate_deg=10.0, slant_deg=15.0, stretch=(0.85, 1.15), paths=False)
_UPSAMPLE = 2  # thin a 2x enlarged digit: a smoother centre line, points ~0.5 px apart
# A quarter of the redraws are drawn anew each epoch: drawing costs ~1 ms per digit, and
# redrawing all 8,000 every epoch doubled the default run's time (one run each: 229 s vs
# 114 s of training, 86.3% vs 85.7% on the held-out writers' drawings).
REDRAW_REFRESH = 0.25


def centre_lines(images: LabeledImages, writer: str = "mnist") -> StrokeSet:
    """Each digit's centre line as one cloud of (x, y) points (``paths=False`` style)."""
    clouds = []
    for image in images.images:
        big = ndimage.zoom(image.astype(np.float32) / 255.0, _UPSAMPLE, order=1)
        rows, cols = np.nonzero(skeletonize(big > 0.35 * max(float(big.max()), 1e-6)))
        if len(rows) == 0:  # an empty image: keep its label with a dot in the middle
            rows, cols = np.array([big.shape[0] // 2]), np.array([big.shape[1] // 2])
        clouds.append((np.stack([cols, rows], axis=1).astype(np.float32),))
    return StrokeSet(tuple(clouds), images.labels, np.full(len(images), writer), REDRAW_STYLE,
                     REDRAW_REFRESH)
