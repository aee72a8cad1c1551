"""Finding and checking the tesseract executable, and saying how to install it.

Kept apart from reading (``ocr.py``) because the app, the CLI and the benchmarks ask
whether Tesseract is there long before (or without ever) reading with it. Set
``TESSERACT_CMD`` to use an executable outside PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytesseract

INSTALL_HINT = (
    "Install Tesseract: `sudo apt-get install tesseract-ocr` (Debian/Ubuntu), "
    "`brew install tesseract` (macOS) or `choco install tesseract` (Windows); "
    "or point the TESSERACT_CMD environment variable at the tesseract executable."
)


class TesseractUnavailable(RuntimeError):
    """The tesseract executable cannot be run."""

    def __init__(self, cmd: str, detail: str = "") -> None:
        msg = f"Tesseract executable {cmd!r} was not found or could not be run"
        if detail:
            msg += f" ({detail})"
        super().__init__(f"{msg}. {INSTALL_HINT}")


def tesseract_cmd() -> str:
    """The executable to run: TESSERACT_CMD wins, else whatever pytesseract is set to."""
    env = os.environ.get("TESSERACT_CMD")
    if env:
        pytesseract.pytesseract.tesseract_cmd = env
    return pytesseract.pytesseract.tesseract_cmd


def tesseract_version() -> str | None:
    """Tesseract's version string (e.g. ``"5.3.0"``), or None when it cannot be run.

    Asks the binary directly because ``pytesseract.get_tesseract_version`` caches
    its first answer, which hides a changed or removed executable.
    """
    cmd = tesseract_cmd()
    if shutil.which(cmd) is None:
        return None
    try:
        out = subprocess.run(
            [cmd, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    text = (out.stdout or out.stderr).strip()
    first = text.splitlines()[0] if text else ""
    return first.split()[-1] if first else None


def tesseract_available() -> bool:
    return tesseract_version() is not None


def tesseract_status() -> str:
    """One line for the app's sidebar: Tesseract's version, or how to install it."""
    version = tesseract_version()
    if version is None:
        return f"Tesseract not found: the app runs without the comparison. {INSTALL_HINT}"
    return f"Tesseract {version}"
