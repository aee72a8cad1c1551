"""Tesseract baseline: reads clean digits, rejects what is not a digit, and says
how to install Tesseract when it is missing."""

from __future__ import annotations

import numpy as np
import pytesseract
import pytest
from PIL import Image, ImageDraw, ImageFont

from handwriting import ocr
from handwriting.ocr import OcrResult, TesseractReader, render_for_tesseract
from handwriting.tesseract_binary import (
    TesseractUnavailable,
    tesseract_available,
    tesseract_version,
)

needs_tesseract = pytest.mark.skipif(
    not tesseract_available(),
    reason="tesseract binary not found (apt-get install tesseract-ocr); CI installs it",
)


def render_text(text: str, height: int | None = 28) -> np.ndarray:
    """White-on-black float image of ``text`` in PIL's default font.

    With ``height=28`` the glyph is fitted into a 20x20 box on a 28x28 canvas,
    like an MNIST digit; with ``None`` the text keeps its rendered size.
    """
    font = ImageFont.load_default(size=80)
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (right - left + 20, bottom - top + 20), 0)
    ImageDraw.Draw(img).text((10 - left, 10 - top), text, fill=255, font=font)
    if height is None:
        return np.asarray(img, np.float32) / 255.0
    scale = 20 / max(right - left, bottom - top)
    small = img.resize(
        (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS
    )
    canvas = Image.new("L", (28, 28), 0)
    canvas.paste(small, ((28 - small.width) // 2, (28 - small.height) // 2))
    return np.asarray(canvas, np.float32) / 255.0


@pytest.fixture
def missing_tesseract(monkeypatch: pytest.MonkeyPatch) -> str:
    path = "/nonexistent/bin/tesseract"
    monkeypatch.delenv("TESSERACT_CMD", raising=False)
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", path)
    return path


def test_render_is_dark_ink_on_white_with_margin() -> None:
    img = np.zeros((28, 28), np.float32)
    img[4:24, 12:16] = 1.0  # a "1": 20 px tall bar
    page = np.asarray(render_for_tesseract(img, ocr.RenderOptions(glyph_height=40, pad=10)))
    assert page.shape[0] == 40 + 2 * 10  # cropped to the ink, then scaled to 40 px
    assert page[:10].min() == 255 and page[:, :10].min() == 255  # white margin
    assert page[30, page.shape[1] // 2] < 50  # the stroke is dark


def test_uint8_and_float_input_render_the_same() -> None:
    digit = render_text("3")
    as_uint8 = np.round(digit * 255).astype(np.uint8)
    a = np.asarray(render_for_tesseract(digit), np.int16)
    b = np.asarray(render_for_tesseract(as_uint8), np.int16)
    assert a.shape == b.shape and np.abs(a - b).max() <= 2
    with pytest.raises(ValueError, match="grey"):
        render_for_tesseract(np.zeros((28, 28, 3)))


def test_missing_binary_raises_actionable_error(missing_tesseract: str) -> None:
    assert tesseract_available() is False
    assert tesseract_version() is None
    with pytest.raises(TesseractUnavailable) as info:
        TesseractReader().read_char(render_text("7"))
    message = str(info.value)
    assert missing_tesseract in message
    assert "apt-get install tesseract-ocr" in message
    assert "TESSERACT_CMD" in message


def test_missing_binary_also_fails_for_lines(missing_tesseract: str) -> None:
    with pytest.raises(TesseractUnavailable):
        TesseractReader().read_line(render_text("12", height=None))


def test_tesseract_cmd_env_var_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "tesseract")
    monkeypatch.setenv("TESSERACT_CMD", "/nonexistent/elsewhere/tesseract")
    with pytest.raises(TesseractUnavailable, match="/nonexistent/elsewhere/tesseract"):
        TesseractReader().read_char(render_text("7"))


def test_blank_images_are_rejected_without_calling_tesseract(missing_tesseract: str) -> None:
    # The binary is "missing": a call to it would raise, so passing proves no call.
    reader = TesseractReader()
    assert reader.read_char(np.zeros((28, 28), np.float32)) == OcrResult("", None, True)
    assert reader.read_line(np.zeros((40, 200), np.float32)).rejected


# Canned hOCR as Tesseract 5.3 writes it with lstm_choice_mode=2 (trimmed).
HOCR = """<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><body>
<span class='ocrx_word' id='word_1_1' title='bbox 40 40 136 140; x_wconf 0'>mY
 <span class='ocrx_cinfo' id='lstm_choices_1_1_1'>
  <span class='ocrx_cinfo' id='choice_1_1_1' title='x_confs 56.8'>m</span>
  <span class='ocrx_cinfo' id='choice_1_1_2' title='x_confs 12.5'>4</span></span>
 <span class='ocrx_cinfo' id='lstm_choices_1_1_2'>
  <span class='ocrx_cinfo' id='choice_1_1_3' title='x_confs 79.1'>Y</span>
  <span class='ocrx_cinfo' id='choice_1_1_4' title='x_confs 64.3'>7</span>
  <span class='ocrx_cinfo' id='choice_1_1_5' title='x_confs 0'>1</span></span>
</span></body></html>"""


def test_best_whitelisted_alternative_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pytesseract, "image_to_pdf_or_hocr", lambda *a, **k: HOCR.encode())
    result = TesseractReader().read_char(render_text("7"))
    assert result.text == "7" and not result.rejected
    assert result.confidence == pytest.approx(0.643)
    # A narrower whitelist changes the answer; zero-confidence alternatives never count.
    assert TesseractReader(whitelist="4").read_char(render_text("7")).text == "4"
    assert TesseractReader(whitelist="1").read_char(render_text("7")).rejected


@needs_tesseract
def test_version_is_reported() -> None:
    version = tesseract_version()
    assert version is not None and version[0].isdigit()


@needs_tesseract
@pytest.mark.parametrize("decoding", ["choices", "whitelist"])
def test_reads_clearly_rendered_digits_in_order(decoding: str) -> None:
    reader = TesseractReader(char_decoding=decoding)
    results = reader.read_chars([render_text(d) for d in "703"], workers=2)
    assert [r.text for r in results] == ["7", "0", "3"]
    for r in results:
        assert not r.rejected
        assert r.confidence is not None and 0.5 < r.confidence <= 1.0


@needs_tesseract
@pytest.mark.parametrize("decoding", ["choices", "whitelist"])
def test_letter_is_rejected_not_read_as_digit(decoding: str) -> None:
    result = TesseractReader(char_decoding=decoding).read_char(render_text("A"))
    assert result == OcrResult("", None, True)


@needs_tesseract
def test_reads_a_line_of_digits() -> None:
    line = render_text("2026", height=None)
    small = Image.fromarray(np.uint8(line * 255)).resize(
        (line.shape[1] // 3, line.shape[0] // 3), Image.LANCZOS
    )
    result = TesseractReader().read_line(np.asarray(small, np.float32) / 255.0)
    assert result.text == "2026"
    assert not result.rejected and result.confidence is not None
