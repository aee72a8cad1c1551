"""Which model file the front ends (app, HTTP API) load, how they load it, and what to tell
a person when it is missing or broken.

One home for the promoted model's path (``$HANDWRITING_MODEL_DIR`` or promotion's default)
so the app reads exactly what training promoted, and for the exact command that fixes
each problem.
"""

from __future__ import annotations

from pathlib import Path

from handwriting.inference import ModelLoadError, Predictor
from handwriting.promoted_dir import MODEL_FILE, default_promoted_dir

MODEL_DIR_ENV = "HANDWRITING_MODEL_DIR"
TRAIN_COMMAND = "python train.py"


def promoted_model_path(directory: str | Path | None = None) -> Path:
    return Path(directory if directory is not None else default_promoted_dir()) / MODEL_FILE


def model_cache_key(path: str | Path) -> tuple[str, int] | None:
    """(absolute path, mtime in ns) of the model file, ``None`` when there is none.

    Promotion replaces the file atomically (new inode, new mtime), so a cache keyed on
    this picks up a newly promoted model on the next page run without a restart.
    """
    path = Path(path).resolve()
    try:
        return str(path), path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def load_predictor(path: str | Path) -> Predictor:
    """Load a checkpoint safely (``weights_only``); raises ModelNotFoundError / ModelLoadError
    (anything unexpected from a strange file becomes a ModelLoadError naming the file)."""
    try:
        return Predictor.from_checkpoint(path)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"{path} could not be loaded ({type(exc).__name__}: {exc})") from exc


def missing_model_message(path: str | Path) -> str:
    """Markdown telling someone with no model what to run (the exact command)."""
    return (
        f"**No trained model yet.** There is no model file at `{path}`.\n\n"
        f"Train one and promote it (about a minute on a laptop CPU) from the project folder:\n\n"
        f"```bash\n{TRAIN_COMMAND}\n```\n\n"
        f"then reload this page. To use a model stored elsewhere, start the app with "
        f"`{MODEL_DIR_ENV}=/path/to/dir` (the folder that holds `{MODEL_FILE}`)."
    )


def corrupt_model_message(path: str | Path, error: Exception) -> str:
    """Markdown for a model file that exists but cannot be used."""
    advice = (
        ""
        if TRAIN_COMMAND in str(error)
        else (
            f"Promote a run again (`handwriting promote <run dir> --force`) or retrain with "
            f"`{TRAIN_COMMAND}`. "
        )
    )
    return (
        f"**The model file `{path}` cannot be used.**\n\n{error}\n\n{advice}Then reload this page."
    )
