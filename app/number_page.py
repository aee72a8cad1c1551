"""Number mode: write a whole number (or a few characters) on a wide canvas and see it
read character by character. Drawn numbers are read from their strokes (the order they
were drawn in: ``stroke_reading``) and the page shows each character's strokes in its
own colour, so a person sees why it read what it read; uploads are read from pixels."""

from __future__ import annotations

import streamlit as st
from page_parts import (
    Settings,
    canvas_buttons,
    draw_or_upload,
    drawing_canvas,
    file_upload,
    read_or_explain,
    reading_for_drawing,
    tesseract,
    tesseract_panel,
)

from handwriting import answers, canvas_state, pictures, serving, stroke_format
from handwriting.inference import Predictor

CANVAS_HEIGHT = 200  # px
# Canvas widths a writer can pick from; 700 px holds about six characters.
ROOM = {"6": 700, "10": 1100, "14": 1500}
PHONE_WIDTH = 340  # px a phone leaves for the canvas: wider canvases are shown scaled down
CHARACTER_SCALE = 3  # each character's 28x28 input, 84 px on screen


def answer_threshold(predictor: Predictor) -> float | None:
    return predictor.calibration.answer_threshold if predictor.calibration else None


def show_line_reading(reading: serving.Reading, noun: str, threshold: float | None,
                      drawing: stroke_format.StrokeDrawing | None = None) -> None:
    """The string read and how sure the model is; how the ink was split into characters
    (one colour each); each character as the model saw it; Tesseract on the whole line."""
    number = reading.number
    # One row of three figures on a phone too (Streamlit stacks columns below 640 px, which
    # would push the grouping picture out of view).
    st.html("<style>@media (max-width: 640px) { .st-key-number_answer "
            '[data-testid="stHorizontalBlock"] { flex-wrap: nowrap; } .st-key-number_answer '
            '[data-testid="stColumn"] { min-width: 0 !important; } .st-key-number_answer '
            '[data-testid="stMetricValue"] { font-size: 1.6rem; } }</style>')
    answer, confidence, weakest = st.container(key="number_answer").columns([2, 1, 1])
    answer.metric("Model reads", number.text)
    confidence.metric(
        "Confidence", f"{100 * number.confidence:.1f} %",
        help=f"Product of the {noun}s' confidences: how sure the model is of the whole string.",
    )
    weakest.metric(f"Least sure {noun}", f"{100 * number.min_confidence:.1f} %")
    confidences = [c.confidence for c in number.characters]
    weakest_at = answers.weakest_index(confidences)
    unsure = [i + 1 for i, c in enumerate(confidences) if threshold is not None and c < threshold]
    if unsure:
        st.warning(f"Not sure of {noun} {', '.join(map(str, unsure))} (counted from the left): "
                   "it is marked below with its best guesses.", icon=":material/help:")

    how = "strokes" if drawing is not None else "ink"
    st.image(pictures.grouping(number, drawing),
             caption=f"{len(number.characters)} {noun}s found: the {how} of each in its own colour",
             width="content")
    captions = [answers.character_caption(c, answers.character_note(c.confidence, i == weakest_at,
                                                                    threshold))
                for i, c in enumerate(number.characters)]
    st.html(pictures.character_tiles([c.image for c in number.characters], captions,
                                     CHARACTER_SCALE))
    tesseract_panel(reading, "Tesseract on the whole line")


def number_canvas(width: int, settings: Settings):
    """The wide canvas, scaled down (CSS zoom) to fit a phone's width: a finger cannot
    scroll the component's own scroll box, since touching the canvas draws. fabric.js maps
    each touch through the zoom, so strokes land where the finger is. On larger screens a
    canvas wider than its column scrolls inside the component."""
    st.html(f"<style>@media (max-width: 640px) {{ .st-key-number_canvas_{width} "
            f"{{ zoom: {min(1.0, PHONE_WIDTH / width):.3f}; }} }}</style>")
    with st.container(key="number_canvas_box"):
        # A new key per width: the resized canvas counts as back and gets the drawing again.
        return drawing_canvas("number", width, CANVAS_HEIGHT, settings,
                              widget_key=f"number_canvas_{width}")


def draw_number(predictor: Predictor, settings: Settings) -> None:
    noun = answers.character_noun(predictor.classes)
    what = "a number" if noun == "digit" else "a few characters"
    st.markdown(f"Write **{what}** on one line, left to right: {noun}s side by side, large.")
    result = st.container()  # above the canvas: in view right after Read, phone or laptop
    room = st.segmented_control(f"Room for {noun}s", list(ROOM), default="6", key="number_room",
                                help="A wider canvas for longer numbers; the drawing stays.")
    width = ROOM[room or "6"]
    rgba = number_canvas(width, settings)
    read = canvas_buttons("number", st.columns([1, 1, 1, 3], gap="small"))
    drawing = stroke_format.from_canvas(canvas_state.objects(st.session_state, "number"),
                                        width, CANVAS_HEIGHT)

    with result:
        reading = reading_for_drawing(
            "number", canvas_state.digest(rgba), read or settings.live,
            lambda: serving.read(predictor, drawing if drawing is not None else rgba, number=True,
                                 tesseract=tesseract(predictor, settings),
                                 empty_message=answers.empty_number_message(noun)),
            answers.empty_number_message(noun), f"Write {what} below, then press **Read**.",
        )
        if reading is not None:
            show_line_reading(reading, noun, answer_threshold(predictor), drawing)


def upload_number(predictor: Predictor, settings: Settings) -> None:
    noun = answers.character_noun(predictor.classes)
    upload = file_upload(f"A picture of one line of {noun}s", "number_upload", settings)
    if upload is None:
        return
    reading = read_or_explain(
        lambda: serving.read(predictor, upload.image, number=True,
                             tesseract=tesseract(predictor, settings)),
        answers.empty_number_upload_message(noun),
    )
    if reading is not None:
        show_line_reading(reading, noun, answer_threshold(predictor))
    # After the answer, and small: a wide preview must not push the answer out of view.
    st.image(upload.preview, caption=upload.name, width=min(upload.preview.width, 420))


def number_mode(predictor: Predictor, settings: Settings) -> None:
    draw_or_upload("number_source", draw_number, upload_number, predictor, settings)
