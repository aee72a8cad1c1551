"""Draw a digit (or upload a picture of one) and see what the promoted model reads,
next to Tesseract's reading of the same 28x28 input; or write a whole number on a wide
canvas and see it read character by character.

Run from the project folder:  streamlit run app/streamlit_app.py

Only layout lives here; every decision (which model file, messages, upload checks,
reading, segmentation, Tesseract) is in ``handwriting.serving`` / ``handwriting.reading``
and unit-tested there. Each mode is one function in ``MODES``. Texts follow the promoted
model's alphabet: "digit" for a 0-9 model, "character" otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import altair as alt
import numpy as np
import streamlit as st
import torch
from streamlit.runtime.uploaded_file_manager import UploadedFile

from handwriting import answers, canvas_state, collection, deployment, serving, uploads
from handwriting.calibration import NOT_A_DIGIT, NOT_SURE
from handwriting.inference import ModelLoadError, Predictor
from handwriting.ocr import TesseractReader
from handwriting.preprocessing import EmptyImageError, prepare_image

# One image at a time gains nothing from a thread pool; on a busy machine the pool's
# threads wait on each other (p50 24 ms with 2 threads vs 1.4 ms with 1, benchmarks/).
torch.set_num_threads(1)

T = TypeVar("T")
CANVAS_SIZE = 280  # px; 10x the model's 28x28 input
NUMBER_CANVAS = (700, 200)  # px (width, height): room for about six characters
TOP_K = 3
PREVIEW_SCALE = 7  # 28 px * 7 = 196 px on screen
CHARACTER_SCALE = 3  # each segmented character's 28x28 input, 84 px on screen
CHARACTERS_PER_ROW = 10


@dataclass(frozen=True)
class Settings:
    """Sidebar choices every mode can use."""

    stroke_width: int
    live: bool
    compare_tesseract: bool
    deployment: deployment.Deployment


# --------------------------------------------------------------------------- cached resources


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def cached_predictor(path: str, mtime_ns: int) -> Predictor:
    """Loaded once per (file, modification time): promoting a new model replaces the file,
    changes the key, and the next page run loads it -- no restart needed."""
    del mtime_ns  # part of the cache key only
    return serving.load_predictor(path)


@st.cache_resource
def cached_reader(whitelist: str) -> TesseractReader:
    return TesseractReader(whitelist=whitelist)


@st.cache_data(ttl=300, show_spinner=False)
def cached_tesseract_status() -> str:
    return serving.tesseract_status()


def load_model(public: bool) -> tuple[Predictor | None, Path]:
    """The promoted model, or (None, path) after showing why there is none (in public,
    without the server's paths and commands: they are for the owner's log, not visitors)."""
    path = serving.promoted_model_path()
    key = serving.model_cache_key(path)
    if key is None:
        st.info(deployment.UNAVAILABLE if public else serving.missing_model_message(path))
        return None, path
    try:
        return cached_predictor(*key), path
    except ModelLoadError as exc:
        st.error(deployment.UNAVAILABLE if public else serving.corrupt_model_message(path, exc))
        return None, path


# --------------------------------------------------------------------------- sidebar


def model_panel(predictor: Predictor, path: Path, public: bool) -> None:
    rows = dict(serving.describe_model(predictor, path))
    if public:
        rows = deployment.public_rows(rows)
    st.header("Model")
    if "File" in rows:
        st.caption(f"`{rows.pop('File')}`")
    st.metric("Validation accuracy", rows.pop("Validation accuracy"))
    st.metric("Test accuracy", rows.pop("Test accuracy"))
    drawn = predictor.metadata.get("metrics", {}).get("drawn/acc")
    drawn_text = rows.pop("Real drawings (held-out writers)")
    if drawn is None:  # a caption, not a warning: the page's warnings are about the drawing
        st.caption(f":orange[{drawn_text[0].upper()}{drawn_text[1:]}.]")
    else:
        st.metric("Real drawings (held-out writers)", f"{drawn:.1%}",
                  help=f"Drawings by writers the model never saw: {drawn_text}")
    st.markdown(f"**Architecture:** {rows.pop('Architecture')}")
    with st.expander("Details", expanded=False):
        st.markdown("\n".join(f"- **{name}:** `{value}`" for name, value in rows.items()))


def settings_panel(deploy: deployment.Deployment) -> Settings:
    st.header("Settings")
    stroke = st.slider("Stroke width", min_value=8, max_value=40, value=20, step=1)
    live = st.toggle("Live prediction", value=False, help="Read after every stroke, no button")
    compare = st.toggle("Compare with Tesseract", value=True)
    if not deploy.public:  # the install hint is a command for the server's owner
        st.caption(cached_tesseract_status())
    return Settings(stroke_width=stroke, live=live, compare_tesseract=compare, deployment=deploy)


def app_deployment() -> deployment.Deployment:
    """Public or private (deployment.py): $HANDWRITING_PUBLIC, else the secret ``public``."""
    try:
        secrets = dict(st.secrets)
    except Exception:  # no secrets.toml (the usual case) or an unreadable one: no secret set
        secrets = {}
    return deployment.deployment(secrets)


# --------------------------------------------------------------------------- result display


def probability_chart(reading: serving.Reading, k: int) -> alt.Chart:
    frame = serving.probability_frame(reading.prediction, k)
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


def show_reading(reading: serving.Reading, calibrated: bool, k: int = TOP_K) -> None:
    """The model's answer, its probabilities, its input and Tesseract's answer."""
    prediction = reading.prediction
    noun = serving.character_noun(prediction.classes)
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
        st.altair_chart(probability_chart(reading, k), width="stretch")

    seen, tesseract = st.columns(2)
    with seen:
        st.image(
            serving.enlarge(reading.image, PREVIEW_SCALE),
            caption="What the model sees (28x28, enlarged)",
        )
    with tesseract:
        st.markdown("**Tesseract on the same 28x28 input**")
        if reading.ocr is None:
            st.info(serving.format_ocr(reading))
        else:
            st.markdown(serving.format_ocr(reading))
            if reading.agrees is not None:
                st.caption(
                    "Same answer as the model." if reading.agrees else "Differs from the model."
                )


# --------------------------------------------------------------------------- input (both modes)


def _clear_canvas(name: str) -> None:
    """Clear button of canvas ``name``: the canvas redraws empty (canvas_state) and its
    stored answer goes too."""
    canvas_state.clear(st.session_state, name)
    st.session_state.pop(f"{name}_reading", None)


def _undo_canvas(name: str) -> None:
    """Undo button: the canvas redraws without its last stroke (works on touch screens,
    unlike the component's hover toolbar)."""
    canvas_state.undo(st.session_state, name)


def drawing_canvas(name: str, width: int, height: int, settings: Settings) -> np.ndarray | None:
    """Canvas ``name`` and the pixels to read from it. A canvas that was not on the page in
    the last completed run (the mode or input was switched) gets its last drawing back."""
    from streamlit_drawable_canvas import st_canvas  # only importable inside a running app

    key = f"{name}_canvas"
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


def _reader(predictor: Predictor, settings: Settings) -> TesseractReader | None:
    if not settings.compare_tesseract:
        return None
    return cached_reader(serving.tesseract_whitelist(predictor.classes))


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
    """The reading of an upload, or None after saying why there is none (a bad file, a
    blank picture)."""
    try:
        return read()
    except serving.UploadError as exc:
        st.error(str(exc))
    except EmptyImageError:
        st.warning(empty_message)
    return None


# --------------------------------------------------------------------------- single digit mode


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
    noun = serving.character_noun(predictor.classes)
    result_column, canvas_column = side_by_side("digit_layout")
    with canvas_column:
        st.markdown(f"Draw **one {noun}**, large, in the middle of the box.")
        rgba = drawing_canvas("digit", CANVAS_SIZE, CANVAS_SIZE, settings)
        read = canvas_buttons("digit", st.columns(3, gap="small"))

    digest = canvas_state.digest(rgba)
    with result_column:
        reading = reading_for_drawing(
            "digit", digest, read or settings.live,
            lambda: serving.read_canvas(predictor, rgba, _reader(predictor, settings)),
            serving.empty_canvas_message(noun), f"Draw a {noun}, then press **Read**.",
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
    noun = serving.character_noun(predictor.classes)
    result_column, upload_column = side_by_side("digit_upload_layout")
    with upload_column:
        upload = file_upload(f"A picture of one {noun}", "digit_upload", settings)
        if upload is None:
            return
        st.image(upload.preview, caption=upload.name, width=CANVAS_SIZE)
    with result_column:
        reading = read_or_explain(
            lambda: serving.read_image28(predictor, prepare_image(upload.image),
                                         _reader(predictor, settings)),
            serving.empty_upload_message(noun),
        )
        if reading is not None:
            show_reading(reading, predictor.calibration is not None)


def draw_or_upload(
    key: str,
    draw: Callable[[Predictor, Settings], None],
    upload: Callable[[Predictor, Settings], None],
    predictor: Predictor,
    settings: Settings,
) -> None:
    """A Draw / Upload switch shared by the modes; ``key`` keeps each mode's choice."""
    source = st.radio(
        "Input",
        ["Draw", "Upload an image"],
        horizontal=True,
        key=key,
        label_visibility="collapsed",
    )
    (draw if source == "Draw" else upload)(predictor, settings)


def single_digit_mode(predictor: Predictor, settings: Settings) -> None:
    draw_or_upload("single_source", draw_digit, upload_digit, predictor, settings)


# --------------------------------------------------------------------------- number mode


def answer_threshold(predictor: Predictor) -> float | None:
    return predictor.calibration.answer_threshold if predictor.calibration else None


def show_line_reading(line: serving.LineReading, noun: str, threshold: float | None) -> None:
    """The string read, its confidence, each segmented character with its label and
    confidence, and Tesseract's reading of the whole line."""
    number = line.number
    answer, confidence, weakest = st.columns([2, 1, 1])
    answer.metric("Model reads", number.text)
    confidence.metric(
        "Confidence",
        f"{100 * number.confidence:.1f} %",
        help=f"Product of the {noun}s' confidences: how sure the model is of the whole string.",
    )
    weakest.metric(f"Least sure {noun}", f"{100 * number.min_confidence:.1f} %")
    confidences = [c.confidence for c in number.characters]
    weakest_at = answers.weakest_index(confidences)
    unsure = [i + 1 for i, c in enumerate(confidences) if threshold is not None and c < threshold]
    if unsure:
        st.warning(f"Not sure of {noun} {', '.join(map(str, unsure))} (counted from the left): "
                   "it is marked below with its best guesses.", icon=":material/help:")

    characters, tesseract = st.columns([3, 1], gap="large")
    with characters:
        st.markdown(f"**{len(number.characters)} {noun}s found**, as the model sees them (28x28)")
        chars = number.characters
        for start in range(0, len(chars), CHARACTERS_PER_ROW):
            row = chars[start : start + CHARACTERS_PER_ROW]
            for offset, (column, char) in enumerate(
                zip(st.columns(CHARACTERS_PER_ROW), row, strict=False)
            ):
                note = answers.character_note(char.confidence, start + offset == weakest_at, threshold)
                column.image(
                    serving.enlarge(char.image, CHARACTER_SCALE),
                    caption=serving.character_caption(char, note),
                )
    with tesseract:
        st.markdown("**Tesseract on the whole line**")
        if line.ocr is None:
            st.info(serving.format_line_ocr(line))
        else:
            st.markdown(serving.format_line_ocr(line))
            if line.agrees is not None:
                st.caption(
                    "Same answer as the model." if line.agrees else "Differs from the model."
                )
    with st.expander(f"Where the {noun}s were found", expanded=False):
        st.image(
            serving.draw_boxes(number.ink, number.bboxes),
            caption="Segmentation: one box per character, read left to right",
        )


def draw_number(predictor: Predictor, settings: Settings) -> None:
    noun = serving.character_noun(predictor.classes)
    what = "a number" if noun == "digit" else "a few characters"
    st.markdown(
        f"Write **{what}** on one line: several {noun}s side by side, large, "
        "with a little space between them."
    )
    result = st.container()  # above the canvas: in view right after Read, phone or laptop
    width, height = NUMBER_CANVAS
    rgba = drawing_canvas("number", width, height, settings)
    read = canvas_buttons("number", st.columns([1, 1, 1, 3], gap="small"))

    with result:
        line = reading_for_drawing(
            "number", canvas_state.digest(rgba), read or settings.live,
            lambda: serving.read_number_canvas(predictor, rgba, _reader(predictor, settings)),
            serving.empty_number_message(noun), f"Write {what} below, then press **Read**.",
        )
        if line is not None:
            show_line_reading(line, noun, answer_threshold(predictor))


def upload_number(predictor: Predictor, settings: Settings) -> None:
    noun = serving.character_noun(predictor.classes)
    upload = file_upload(f"A picture of one line of {noun}s", "number_upload", settings)
    if upload is None:
        return
    line = read_or_explain(
        lambda: serving.read_number_image(predictor, upload.image, _reader(predictor, settings)),
        serving.empty_number_upload_message(noun),
    )
    if line is not None:
        show_line_reading(line, noun, answer_threshold(predictor))
    # After the answer, and small: a wide preview must not push the answer out of view.
    st.image(upload.preview, caption=upload.name, width=min(upload.preview.width, 420))


def number_mode(predictor: Predictor, settings: Settings) -> None:
    draw_or_upload("number_source", draw_number, upload_number, predictor, settings)


# Mode key -> page body; the label shown follows the model's alphabet (serving.mode_labels).
MODES: dict[str, Callable[[Predictor, Settings], None]] = {
    "single": single_digit_mode,
    "number": number_mode,
}


# --------------------------------------------------------------------------- page


def main() -> None:
    st.set_page_config(page_title="Handwriting reader", page_icon="✍️", layout="wide")
    st.title("Handwriting reader")
    deploy = app_deployment()
    with st.sidebar:
        model_box = st.container()  # filled below, shown above the settings
        settings = settings_panel(deploy)
    predictor, path = load_model(deploy.public)
    if predictor is None:
        return
    with model_box:
        model_panel(predictor, path, deploy.public)
    labels = serving.mode_labels(predictor.classes)
    mode = st.radio(
        "Mode", list(MODES), format_func=labels.__getitem__, horizontal=True, key="mode"
    )
    MODES[mode](predictor, settings)


main()
