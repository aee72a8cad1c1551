"""Things people put in front of a digit reader that are not digits: the junk set.

Why: a classifier with ten outputs answers one of ten digits for anything, and a
noisy photo came back as "9" at 69%. To refuse junk we must train and measure on it,
and nothing public here has it, so it is generated, seeded, in kinds people produce:

- drawn on the canvas (through the app's own canvas path, ``render.py``): scribbles,
  hatching, shapes (boxes, triangles, stars, arrows, plus signs, spirals, zigzags,
  hearts), capital letters drawn stroke by stroke;
- uploaded (through the app's upload path, ``prepare_image``): noise, photos (crops of
  scikit-image's bundled sample photos), smooth textures, printed letters and symbols.

Shapes a person might mean as a digit are left out on purpose: circles and ovals (0),
single upright lines (1), and letters that are written like digits (O, I, l, S, Z, B,
G, b, q, g, T, C, D). ``split="train"`` and ``"test"`` use different seeds and different
photos, so a detector is measured on junk it never saw.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from handwriting.atomic import write_atomic
from handwriting.data.download import default_data_dir
from handwriting.preprocessing import EmptyImageError, prepare_image
from handwriting.render import StrokeStyle, render_app_input, render_input

log = logging.getLogger(__name__)
DRAWN_KINDS = ("scribble", "hatching", "shape", "letter")
UPLOADED_KINDS = ("noise", "photo", "texture", "printed")
KINDS = DRAWN_KINDS + UPLOADED_KINDS
SPLIT_SEEDS = {"train": 101, "val": 202, "test": 303}
# scikit-image's bundled photos (no download); train and test never share a photo.
PHOTOS = {
    "train": ("camera", "astronaut", "coffee", "chelsea", "horse", "coins", "moon"),
    "val": ("page", "clock"),
    "test": ("text", "rocket", "grass", "gravel", "brick", "hubble_deep_field", "cell"),
}
PRINTED = "AEFHKMNPRUVWXYaehkmnruvwxy+=#?%&@*"
_STYLE = StrokeStyle(rotate_deg=15.0, slant_deg=15.0, stretch=(0.8, 1.2), jitter=0.01)

# Capital letters stroke by stroke in a unit box (x right, y down).
LETTERS: dict[str, list[list[tuple[float, float]]]] = {
    "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.25, 0.55), (0.75, 0.55)]],
    "E": [[(1, 0), (0, 0), (0, 1), (1, 1)], [(0, 0.5), (0.7, 0.5)]],
    "F": [[(1, 0), (0, 0), (0, 1)], [(0, 0.5), (0.7, 0.5)]],
    "H": [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 0.5), (1, 0.5)]],
    "K": [[(0, 0), (0, 1)], [(1, 0), (0, 0.55), (1, 1)]],
    "L": [[(0, 0), (0, 1), (0.8, 1)]],
    "M": [[(0, 1), (0, 0), (0.5, 0.6), (1, 0), (1, 1)]],
    "N": [[(0, 1), (0, 0), (1, 1), (1, 0)]],
    "P": [[(0, 1), (0, 0), (0.7, 0), (0.9, 0.15), (0.9, 0.35), (0.7, 0.5), (0, 0.5)]],
    "R": [[(0, 1), (0, 0), (0.7, 0), (0.9, 0.15), (0.9, 0.35), (0.7, 0.5), (0, 0.5)],
          [(0.4, 0.5), (1, 1)]],
    "U": [[(0, 0), (0, 0.75), (0.2, 1), (0.8, 1), (1, 0.75), (1, 0)]],
    "V": [[(0, 0), (0.5, 1), (1, 0)]],
    "W": [[(0, 0), (0.25, 1), (0.5, 0.4), (0.75, 1), (1, 0)]],
    "X": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "Y": [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]],
}


@dataclass(frozen=True)
class JunkSet:
    """``images``: (N, 28, 28) uint8 model inputs; ``kinds``: what each one is;
    ``blank``: True where the app's preprocessing already refuses it as empty (its
    image is all zeros: such an input never reaches the model)."""

    images: np.ndarray
    kinds: np.ndarray
    blank: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def _polyline(points: list[tuple[float, float]], rng: np.random.Generator) -> np.ndarray:
    """Straight segments as densely sampled points (a pen moves; it does not jump)."""
    pts = np.asarray(points, dtype=np.float64)
    out = [np.linspace(a, b, 8, endpoint=False) for a, b in zip(pts[:-1], pts[1:], strict=True)]
    return np.concatenate([*out, pts[-1:]]) + rng.normal(0, 0.004, (sum(map(len, out)) + 1, 2))


def _scribble(rng: np.random.Generator) -> list[np.ndarray]:
    turns = np.cumsum(rng.normal(0, 0.9, int(rng.integers(80, 200))))
    steps = np.stack([np.cos(turns), np.sin(turns)], axis=1) * rng.uniform(0.5, 1.5)
    return [np.cumsum(steps, axis=0)]


def _hatching(rng: np.random.Generator) -> list[np.ndarray]:
    angle, lines = rng.uniform(0, np.pi), int(rng.integers(4, 12))
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    if rng.random() < 0.5:  # one zigzag stroke instead of separate lines
        corners = [normal * (i / lines) + direction * (i % 2) for i in range(lines + 1)]
        return [_polyline([tuple(c) for c in corners], rng)]
    return [_polyline([tuple(normal * i / lines), tuple(normal * i / lines + direction)], rng)
            for i in range(lines + 1)]


def _shape(rng: np.random.Generator) -> list[np.ndarray]:
    kind = rng.choice(["box", "triangle", "star", "arrow", "plus", "spiral", "zigzag", "heart",
                       "hash"])
    if kind == "box":
        w = rng.uniform(0.5, 1.0)
        return [_polyline([(0, 0), (1, 0), (1, w), (0, w), (0, 0)], rng)]
    if kind == "triangle":
        return [_polyline([(0, 1), (0.5, 0), (1, 1), (0, 1)], rng)]
    if kind == "star":
        k = np.arange(11) * 4 * np.pi / 5
        return [_polyline(list(zip(np.sin(k), -np.cos(k), strict=True)), rng)]
    if kind == "arrow":
        return [_polyline([(0, 0.5), (1, 0.5)], rng), _polyline([(0.7, 0.2), (1, 0.5), (0.7, 0.8)], rng)]
    if kind == "plus":
        return [_polyline([(0.5, 0), (0.5, 1)], rng), _polyline([(0, 0.5), (1, 0.5)], rng)]
    if kind == "hash":
        return [_polyline([(0.3, 0), (0.3, 1)], rng), _polyline([(0.7, 0), (0.7, 1)], rng),
                _polyline([(0, 0.35), (1, 0.35)], rng), _polyline([(0, 0.65), (1, 0.65)], rng)]
    if kind == "spiral":
        t = np.linspace(0, rng.uniform(4, 7) * np.pi, 120)
        return [np.stack([t * np.cos(t), t * np.sin(t)], axis=1)]
    if kind == "zigzag":
        n = int(rng.integers(3, 7))
        return [_polyline([(i / n, float(i % 2)) for i in range(n + 1)], rng)]
    t = np.linspace(0, 2 * np.pi, 80)  # heart
    return [np.stack([16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t)
                                              - 2 * np.cos(3 * t) - np.cos(4 * t))], axis=1)]


def _letter(rng: np.random.Generator) -> list[np.ndarray]:
    strokes = LETTERS[str(rng.choice(sorted(LETTERS)))]
    return [_polyline(stroke, rng) for stroke in strokes]


def _noise(rng: np.random.Generator) -> np.ndarray:
    shape = (int(rng.integers(40, 300)), int(rng.integers(40, 300)))
    kind = rng.integers(3)
    if kind == 0:
        return rng.random(shape)
    if kind == 1:
        return np.clip(rng.normal(0.5, 0.25, shape), 0, 1)
    return (rng.random(shape) < rng.uniform(0.02, 0.3)).astype(np.float64)


def _texture(rng: np.random.Generator) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.random((160, 160)), rng.uniform(2, 12))
    field = (field - field.min()) / max(np.ptp(field), 1e-6)
    ramp = np.linspace(0, rng.uniform(0, 0.6), 160)[None, :]
    return np.clip(field + ramp, 0, 1)


def _photo(rng: np.random.Generator, names: tuple[str, ...]) -> np.ndarray:
    import skimage.data
    from skimage.color import rgb2gray, rgba2rgb

    image = getattr(skimage.data, str(rng.choice(names)))()
    if image.ndim == 3:
        image = rgb2gray(rgba2rgb(image) if image.shape[2] == 4 else image)
    image = np.asarray(image, dtype=np.float64)
    image = image / max(float(image.max()), 1e-6)
    h, w = image.shape
    side = int(rng.integers(min(h, w) // 4, min(h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return image[y:y + side, x:x + side]


def _printed(rng: np.random.Generator) -> np.ndarray:
    text = "".join(rng.choice(list(PRINTED), int(rng.integers(1, 3))))
    font = ImageFont.load_default(size=int(rng.integers(30, 90)))
    canvas = Image.new("L", (200, 140), 255)
    ImageDraw.Draw(canvas).text((20, 10), text, fill=int(rng.integers(0, 80)), font=font)
    return np.asarray(canvas.rotate(float(rng.uniform(-20, 20)), fillcolor=255), dtype=np.float64) / 255


def _drawn(kind: str, rng: np.random.Generator, exact: bool) -> np.ndarray:
    strokes = {"scribble": _scribble, "hatching": _hatching, "shape": _shape, "letter": _letter}[kind](rng)
    return (render_app_input if exact else render_input)(strokes, rng, _STYLE)


def make_junk(count: int, split: str = "train", kinds: tuple[str, ...] = KINDS,
              exact: bool = True) -> JunkSet:
    """``count`` junk inputs (kinds in turn), reproducible from ``split`` alone.

    ``exact=True`` draws canvas kinds through the full 280 px canvas (evaluation);
    ``False`` uses the fast raster (training), as ``render.render_many`` does."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_SEEDS)}, got {split!r}")
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"unknown junk kinds {sorted(unknown)}; choose from {KINDS}")
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    blank = np.zeros(count, dtype=bool)
    labels = np.array([kinds[i % len(kinds)] for i in range(count)])
    for i, kind in enumerate(labels):
        try:
            if kind in DRAWN_KINDS:
                image = _drawn(kind, rng, exact)
            else:
                picture = {"noise": _noise, "texture": _texture, "printed": _printed}.get(kind)
                raw = picture(rng) if picture else _photo(rng, PHOTOS[split])
                if rng.random() < 0.5:
                    raw = 1.0 - raw
                image = prepare_image((raw * 255).astype(np.uint8))
        except EmptyImageError:
            blank[i] = True
            continue
        images[i] = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return JunkSet(images, labels, blank)


JUNK_VERSION = 1  # bump when a generator changes what it draws (cached sets are redrawn)


def cached_junk(count: int, split: str = "train", exact: bool = True) -> JunkSet:
    """``make_junk`` drawn once per machine and kept in ``$HANDWRITING_DATA_DIR/junk`` (or
    ``~/.cache/handwriting/junk``): 12,000 training inputs take about a minute to draw. A
    cache that cannot be read is redrawn; one that cannot be written only costs time."""
    path = default_data_dir("junk") / f"junk-v{JUNK_VERSION}-{split}-{count}-{'exact' if exact else 'fast'}.npz"
    try:
        with np.load(path, allow_pickle=False) as npz:
            cached = JunkSet(npz["images"], npz["kinds"], npz["blank"])
        if cached.images.shape == (count, 28, 28) and cached.images.dtype == np.uint8:
            return cached
    except (OSError, ValueError, KeyError):
        pass
    junk = make_junk(count, split, exact=exact)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=junk.images, kinds=junk.kinds, blank=junk.blank)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buffer.getvalue())
    except (OSError, RuntimeError) as exc:
        log.info("junk cache not written (%s): it is drawn again next time", exc)
    return junk
