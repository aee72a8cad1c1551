"""The parts both modes of the page share: sidebar settings, the canvas with its Read /
Undo / Clear buttons, the upload box, the answer for one character.

Layout only: every decision (messages, upload checks, reading, pictures) lives in the
``handwriting`` package and is unit-tested there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import altair as alt
import numpy as np
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from handwriting import answers, canvas_state, deployment, pictures, serving, uploads
from handwriting.calibration import NOT_A_DIGIT, NOT_SURE
from handwriting.grey_image import ImageError
from handwriting.inference import Predictor
from handwriting.ocr import TesseractReader
from handwriting.preprocessing import EmptyImageError

T = TypeVar("T")
TOP_K = 3
PREVIEW_SCALE = 7  # 28 px * 7 = 196 px on screen


@dataclass(frozen=True)
class Settings:
    """Sidebar choices every mode can use."""

    stroke_width: int
    live: bool
    compare_tesseract: bool
    deployment: deployment.Deployment


@st.cache_resource
def cached_reader(classes: tuple[str, ...]) -> TesseractReader:
    """serving.make_reader, once per alphabet."""
    return serving.make_reader(classes)


def tesseract(predictor: Predictor, settings: Settings) -> TesseractReader | None:
    """Tesseract restricted to the model's classes, or None when the comparison is off."""
    if not settings.compare_tesseract:
        return None
    return cached_reader(tuple(predictor.classes))


# --------------------------------------------------------------------------- answers


def probability_chart(prediction, k: int) -> alt.Chart:
    frame = pictures.probability_frame(prediction, k)
    frame["shown as"] = np.where(frame["top_k"], f"top {k}", "other")
    return (
        alt.Chart(frame, height=220)
        .mark_bar()
        .encode(
            x=alt.X("class:N", sort=None, title="class", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1]), title="probability"),
            color=alt.Color(
                "shown as:N",
                scale=alt.Scale(domain=[f"top {k}", "other"], range=["#e4572e", "#9aa5b1"]),
                legend=alt.Legend(orient="top", title=None),
            ),
            tooltip=["class", alt.Tooltip("probability:Q", format=".3f"), "rank"],
        )
    )


def tesseract_panel(reading: serving.Reading, title: str) -> None:
    """Tesseract's answer on the same input, and whether it agrees with the model."""
    st.markdown(f"**{title}**")
    text = answers.tesseract_answer(reading.ocr, reading.ocr_note, line=reading.number is not None)
    if reading.ocr is None:
        st.info(text)
        return
    st.markdown(text)
    if reading.agrees is not None:
        st.caption("Same answer as the model." if reading.agrees else "Differs from the model.")


def show_reading(reading: serving.Reading, calibrated: bool, k: int = TOP_K) -> None:
    """One character: the model's answer, its probabilities, its input, Tesseract's answer."""
    prediction = reading.prediction
    noun = answers.character_noun(prediction.classes)
    answer, confidence = st.columns(2)
    answer.metric("Model reads", answers.headline(prediction))
    if prediction.verdict == NOT_A_DIGIT:
        # No digit probabilities: they would dress up a photo or a scribble as a "1".
        confidence.metric("Not a digit", answers.percent(prediction.junk_score or 0.0),
                          help="The junk detector's probability that this is not a digit.")
        st.error(answers.explanation(prediction, noun), icon=":material/block:")
    else:
        confidence.metric("Confidence", f"{100 * prediction.confidence:.1f} %",
                          help=answers.confidence_help(calibrated))
        if prediction.verdict == NOT_SURE:
            st.warning(answers.explanation(prediction, noun), icon=":material/help:")
        top = ", ".join(f"{label} ({100 * p:.1f} %)" for label, p in prediction.top_k(k))
        st.caption(f"Top {k}: {top}")
        st.altair_chart(probability_chart(prediction, k), width="stretch")

    seen, ocr = st.columns(2)
    seen.image(pictures.enlarge(reading.image, PREVIEW_SCALE),
               caption="What the model sees (28x28, enlarged)")
    with ocr:
        tesseract_panel(reading, "Tesseract on the same 28x28 input")


# --------------------------------------------------------------------------- input


def _clear_canvas(name: str) -> None:
    """Clear button of canvas ``name``: the canvas redraws empty (canvas_state) and its
    stored answer goes too."""
    canvas_state.clear(st.session_state, name)
    st.session_state.pop(f"{name}_reading", None)


def _undo_canvas(name: str) -> None:
    """Undo button: the canvas redraws without its last stroke (works on touch screens,
    unlike the component's hover toolbar)."""
    canvas_state.undo(st.session_state, name)


def drawing_canvas(name: str, width: int, height: int, settings: Settings,
                   widget_key: str | None = None) -> np.ndarray | None:
    """Canvas ``name`` and the pixels to read from it. A canvas that was not on the page in
    the last completed run (the mode or input was switched, or it was resized under a new
    ``widget_key``) gets its last drawing back."""
    from streamlit_drawable_canvas import st_canvas  # only importable inside a running app

    key = widget_key or f"{name}_canvas"
    if canvas_state.came_back(st.session_state, key):
        canvas_state.restore(st.session_state, name)
    canvas = st_canvas(
        stroke_width=settings.stroke_width,
        stroke_color="#FFFFFF",
        background_color="#000000",  # white on black, like MNIST
        width=width,
        height=height,
        drawing_mode="freedraw",
        initial_drawing=canvas_state.initial_drawing(st.session_state, name),
        return_image_data=True,
        update_streamlit=True,
        key=key,
    )
    return canvas_state.remember(st.session_state, name, canvas.json_data, canvas.image_data)


def canvas_buttons(name: str, columns: list) -> bool:
    """Read, Undo and Clear under canvas ``name``; True when Read was pressed."""
    read = columns[0].button("Read", type="primary", key=f"read_{name}", width="stretch")
    columns[1].button("Undo", on_click=_undo_canvas, args=(name,), key=f"undo_{name}",
                      width="stretch", help="Take back the last stroke")
    columns[2].button("Clear", on_click=_clear_canvas, args=(name,), key=f"clear_{name}",
                      width="stretch")
    return read


def reading_for_drawing(
    name: str, digest: str | None, read_now: bool, read: Callable[[], T],
    empty_message: str, prompt: str,
) -> T | None:
    """Read canvas ``name`` when asked and remember the answer with the drawing (``digest``)
    it belongs to. Returns the answer for the drawing as it is now, or None after saying why
    there is none (blank canvas, a drawing changed since it was read, nothing read yet)."""
    key = f"{name}_reading"
    if read_now:
        try:
            answer = read()
        except EmptyImageError:
            st.session_state.pop(key, None)
            st.warning(empty_message, icon="✏️")
            return None
        st.session_state[key] = (digest, answer)
    stored = st.session_state.get(key)
    if stored is not None and stored[0] == digest:
        return stored[1]
    if stored is not None:
        st.info("The drawing changed since it was read: press **Read** to read it again.")
    else:
        st.info(prompt)
    return None


def file_upload(label: str, key: str, settings: Settings) -> uploads.CheckedUpload | None:
    """The upload widget with the app's type and size limits (stated while nothing is up),
    and the upload checked before anything of it is shown: a bad file is one message."""
    limit = settings.deployment.max_upload_mb
    upload: UploadedFile | None = st.file_uploader(
        label, type=list(uploads.UPLOAD_TYPES), max_upload_size=limit, key=key)
    if upload is None:
        st.caption(f"{', '.join(uploads.UPLOAD_TYPES)}; up to {limit} MB.")
        return None
    try:
        return uploads.checked(upload.name, upload.getvalue(),
                               max_bytes=settings.deployment.max_upload_bytes)
    except uploads.UploadError as exc:
        st.error(str(exc), icon=":material/error:")
        return None


def read_or_explain(read: Callable[[], T], empty_message: str) -> T | None:
    """The reading of an upload, or None after saying why there is none (a blank picture,
    a picture that decodes but cannot be prepared)."""
    try:
        return read()
    except EmptyImageError:
        st.warning(empty_message)
    except ImageError as exc:
        st.error(str(exc), icon=":material/error:")
    return None


def draw_or_upload(key: str, draw: Callable[[Predictor, Settings], None],
                   upload: Callable[[Predictor, Settings], None], predictor: Predictor,
                   settings: Settings) -> None:
    """A Draw / Upload switch shared by the modes; ``key`` keeps each mode's choice."""
    source = st.radio("Input", ["Draw", "Upload an image"], horizontal=True, key=key,
                      label_visibility="collapsed")
    (draw if source == "Draw" else upload)(predictor, settings)
