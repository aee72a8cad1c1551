"""The pictures a front end shows beside an answer: the 28x28 input enlarged, the class
probabilities as a table to chart, and how a line was split into characters -- each
character's ink (its strokes, when it was read from strokes) in its own colour, so a
person sees at once why the model read what it read.

Plain numpy/PIL/pandas so each picture is unit-tested without a browser.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from handwriting.inference import Prediction
from handwriting.reading import NumberReading
from handwriting.render import draw_ink
from handwriting.stroke_format import StrokeDrawing

# One colour per character, told apart also by people with common colour-vision
# deficiencies (Okabe-Ito), bright enough on black.
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
           "#FFFFFF")


def colour(index: int) -> str:
    """The colour of character ``index`` (cycling through the palette)."""
    return PALETTE[index % len(PALETTE)]


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float32)


def probability_frame(prediction: Prediction, k: int = 3) -> pd.DataFrame:
    """One row per class (in class order): probability, rank, and whether it is in the top k."""
    probs = np.asarray(prediction.probabilities, dtype=float)
    ranks = np.empty(len(probs), dtype=int)
    ranks[np.argsort(-probs, kind="stable")] = np.arange(1, len(probs) + 1)
    return pd.DataFrame(
        {"class": list(prediction.classes), "probability": probs, "rank": ranks,
         "top_k": ranks <= k}
    )


def enlarge(image28: np.ndarray, scale: int = 8) -> np.ndarray:
    """A [0, 1] image as uint8, each pixel a ``scale`` x ``scale`` block (nearest neighbour),
    so the 28x28 input is visible as the model sees it, not smoothed by the browser."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    pixels = np.round(np.clip(np.asarray(image28, dtype=np.float32), 0.0, 1.0) * 255).astype(
        np.uint8
    )
    return np.kron(pixels, np.ones((scale, scale), dtype=np.uint8))


def grouping(number: NumberReading, drawing: StrokeDrawing | None = None, box_width: int = 2
             ) -> np.ndarray:
    """(H, W, 3) uint8: the line on black, character i's ink in ``colour(i)`` and its box
    outlined in the same colour. From strokes (``drawing``), each character's own strokes
    are coloured, so two digits whose boxes overlap still show apart; from pixels, the ink
    inside each character's box is."""
    height, width = number.ink.shape
    picture = np.zeros((height, width, 3), dtype=np.float32)
    for index, character in enumerate(number.characters):
        if drawing is not None and character.strokes is not None:
            start, end = character.strokes
            coverage = draw_ink(list(drawing.strokes[start:end]), drawing.stroke_width,
                                (height, width))
        else:
            x0, y0, x1, y1 = character.bbox
            coverage = np.zeros((height, width), dtype=np.float32)
            coverage[y0:y1, x0:x1] = number.ink[y0:y1, x0:x1]
        ink = np.clip(coverage, 0.0, 1.0)[..., None]
        picture = picture * (1 - ink) + ink * _rgb(colour(index))
    image = Image.fromarray(np.round(picture).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for index, (x0, y0, x1, y1) in enumerate(number.bboxes):
        draw.rectangle((x0 - box_width, y0 - box_width, x1 - 1 + box_width, y1 - 1 + box_width),
                       outline=colour(index), width=box_width)
    return np.asarray(image)


def _png_data_uri(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def character_tiles(images: Sequence[np.ndarray], captions: Sequence[str], scale: int = 3) -> str:
    """HTML: each character's 28x28 input enlarged, framed in its colour (as in
    ``grouping``), its caption under it; the tiles wrap onto as many rows as the screen
    needs (Streamlit columns would stack one per row on a phone)."""
    tiles = []
    for index, (image, caption) in enumerate(zip(images, captions, strict=True)):
        tiles.append(
            f'<figure style="margin:0;width:{28 * scale + 8}px;text-align:center">'
            f'<img src="{_png_data_uri(enlarge(image, scale))}" alt="character {index + 1}" '
            f'style="border:4px solid {colour(index)};image-rendering:pixelated;display:block">'
            f'<figcaption style="font-size:0.8rem">{html.escape(caption)}</figcaption></figure>')
    return ('<div class="character-tiles" style="display:flex;flex-wrap:wrap;gap:0.5rem">'
            + "".join(tiles) + "</div>")
