"""Draw a digit (or upload a picture of one) and see what the promoted model reads,
next to Tesseract's reading of the same 28x28 input; or write a whole number on a wide
canvas and see it read character by character.

Run from the project folder:  streamlit run app/streamlit_app.py

Only layout lives here and in the page modules beside it (``page_parts``, ``digit_page``,
``number_page``); every decision (which model file, messages, upload checks, reading,
pictures, Tesseract) is in the ``handwriting`` package and unit-tested there. Texts
follow the promoted model's alphabet: "digit" for a 0-9 model, "character" otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import streamlit as st
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the page modules beside this file

from digit_page import single_digit_mode  # noqa: E402
from number_page import number_mode  # noqa: E402
from page_parts import Settings  # noqa: E402

from handwriting import answers, deployment, model_card, model_loading, tesseract_binary  # noqa: E402
from handwriting.inference import ModelLoadError, Predictor  # noqa: E402

# One image at a time gains nothing from a thread pool; on a busy machine the pool's
# threads wait on each other (p50 24 ms with 2 threads vs 1.4 ms with 1, benchmarks/).
torch.set_num_threads(1)

# Mode key -> page body; the label shown follows the model's alphabet (answers.mode_labels).
MODES: dict[str, Callable[[Predictor, Settings], None]] = {
    "single": single_digit_mode,
    "number": number_mode,
}


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def cached_predictor(path: str, mtime_ns: int) -> Predictor:
    """Loaded once per (file, modification time): promoting a new model replaces the file,
    changes the key, and the next page run loads it -- no restart needed."""
    del mtime_ns  # part of the cache key only
    return model_loading.load_predictor(path)


@st.cache_data(ttl=300, show_spinner=False)
def cached_tesseract_status() -> str:
    return tesseract_binary.tesseract_status()


def load_model(public: bool) -> tuple[Predictor | None, Path]:
    """The promoted model, or (None, path) after showing why there is none (in public,
    without the server's paths and commands: they are for the owner's log, not visitors)."""
    path = model_loading.promoted_model_path()
    key = model_loading.model_cache_key(path)
    if key is None:
        st.info(deployment.UNAVAILABLE if public else model_loading.missing_model_message(path))
        return None, path
    try:
        return cached_predictor(*key), path
    except ModelLoadError as exc:
        st.error(deployment.UNAVAILABLE if public else model_loading.corrupt_model_message(path, exc))
        return None, path


def model_panel(predictor: Predictor, path: Path, public: bool) -> None:
    rows = dict(model_card.describe_model(predictor, path))
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
    labels = answers.mode_labels(predictor.classes)
    mode = st.radio(
        "Mode", list(MODES), format_func=labels.__getitem__, horizontal=True, key="mode"
    )
    MODES[mode](predictor, settings)


main()
