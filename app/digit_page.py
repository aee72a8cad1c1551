"""Single-character mode: draw (or upload) one character and see what the model reads,
how sure it is, and what Tesseract reads from the same 28x28 input."""

from __future__ import annotations

import numpy as np
import streamlit as st
from page_parts import (
    Settings,
    canvas_buttons,
    draw_or_upload,
    drawing_canvas,
    file_upload,
    read_or_explain,
    reading_for_drawing,
    show_reading,
    tesseract,
)

from handwriting import answers, canvas_state, collection, serving
from handwriting.inference import Predictor
from handwriting.preprocessing import EmptyImageError

CANVAS_SIZE = 280  # px; 10x the model's 28x28 input


def side_by_side(key: str) -> tuple:
    """(result column, input column): in this order in the page, so on a phone (columns
    stacked) the answer sits above the canvas and is in view after Read; on wider screens
    the CSS below swaps them back, input on the left. The ratio leaves the 280 px canvas
    room from 1024 px wide with the sidebar open."""
    st.html(f"<style>@media (min-width: 640px) {{ .st-key-{key} > div > "
            '[data-testid="stHorizontalBlock"] { flex-direction: row-reverse; } }</style>')
    with st.container(key=key):
        return tuple(st.columns([5, 4], gap="medium"))


def draw_digit(predictor: Predictor, settings: Settings) -> None:
    noun = answers.character_noun(predictor.classes)
    result_column, canvas_column = side_by_side("digit_layout")
    with canvas_column:
        st.markdown(f"Draw **one {noun}**, large, in the middle of the box.")
        rgba = drawing_canvas("digit", CANVAS_SIZE, CANVAS_SIZE, settings)
        read = canvas_buttons("digit", st.columns(3, gap="small"))

    digest = canvas_state.digest(rgba)
    with result_column:
        reading = reading_for_drawing(
            "digit", digest, read or settings.live,
            lambda: serving.read(predictor, rgba, tesseract=tesseract(predictor, settings),
                                 empty_message=answers.empty_canvas_message(noun)),
            answers.empty_canvas_message(noun), f"Draw a {noun}, then press **Read**.",
        )
        if reading is not None:
            show_reading(reading, predictor.calibration is not None)
            if collection.saving_enabled() and not settings.deployment.public:
                save_panel(predictor, rgba, reading, digest)


def save_panel(
    predictor: Predictor, rgba: np.ndarray, reading: serving.Reading, digest: str | None
) -> None:
    """The author confirms or corrects the label and keeps the drawing: real drawings to
    score the model on (and train with) -- see handwriting.collection."""
    directory = collection.default_drawings_dir()
    classes = predictor.classes
    with st.expander("Save this drawing with its label"):
        with st.form(f"save_{digest}", border=False):
            label = st.selectbox(
                "It is a", classes, index=classes.index(reading.prediction.label),
                help="Correct the label if the model got it wrong.",
            )
            save = st.form_submit_button("Save drawing")
        if save:
            try:
                path, new = collection.save_once(rgba, label, classes, directory)
            except (EmptyImageError, ValueError, OSError) as error:
                st.error(f"Not saved: {error}")
            else:
                st.success(f"Saved as **{label}**: `{path.name}`" if new else
                           f"Already saved as **{label}** (`{path.name}`): kept once.")
        counts = collection.drawing_counts(directory)
        if counts:
            per_label = ", ".join(f"{name}: {n}" for name, n in counts.items())
            st.caption(
                f"{sum(counts.values())} drawings in `{directory}` ({per_label}). Score the "
                f"model on them: `handwriting evaluate --data folder --root {directory}`"
            )


def upload_digit(predictor: Predictor, settings: Settings) -> None:
    noun = answers.character_noun(predictor.classes)
    result_column, upload_column = side_by_side("digit_upload_layout")
    with upload_column:
        upload = file_upload(f"A picture of one {noun}", "digit_upload", settings)
        if upload is None:
            return
        st.image(upload.preview, caption=upload.name, width=CANVAS_SIZE)
    with result_column:
        reading = read_or_explain(
            lambda: serving.read(predictor, upload.image, tesseract=tesseract(predictor, settings)),
            answers.empty_upload_message(noun),
        )
        if reading is not None:
            show_reading(reading, predictor.calibration is not None)


def single_digit_mode(predictor: Predictor, settings: Settings) -> None:
    draw_or_upload("single_source", draw_digit, upload_digit, predictor, settings)
