"""Public or private: the one setting that says who the app is for.

Run for yourself (``streamlit run app/streamlit_app.py``, the default) the app shows
what helps its owner: the model file's path, the commands to run next, the option to save
drawings. Open to strangers, those are a server's internals and a way to fill its disk, so
``HANDWRITING_PUBLIC=1`` (or ``public = true`` in ``.streamlit/secrets.toml``, for hosts
where environment variables are awkward) hides paths and commands, turns saving off and
lowers the upload limit. Kept apart from the page so it is decided, and tested, in one place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handwriting.uploads import MAX_UPLOAD_MB

PUBLIC_ENV = "HANDWRITING_PUBLIC"
PUBLIC_SECRET = "public"
PUBLIC_UPLOAD_MB = 2  # a phone photo of a digit, scaled down, is far below this
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Deployment:
    """What the page may show and accept."""

    public: bool
    max_upload_mb: int

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def shows_internals(self) -> bool:
        """Server paths, run folders and command lines."""
        return not self.public


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def deployment(secrets: Mapping[str, Any] | None = None) -> Deployment:
    """Public when ``$HANDWRITING_PUBLIC`` says so (1/true/yes/on), else when the secret
    ``public`` does; private otherwise. The environment wins, so an operator can override a
    secrets file either way (``HANDWRITING_PUBLIC=0``)."""
    env = os.environ.get(PUBLIC_ENV)
    if env is not None and env.strip():
        public = _truthy(env)
    else:
        public = bool(secrets) and _truthy(secrets.get(PUBLIC_SECRET, False))
    return Deployment(public=public, max_upload_mb=PUBLIC_UPLOAD_MB if public else MAX_UPLOAD_MB)


# What a visitor of a public app sees when there is no usable model: no path, no command.
UNAVAILABLE = ("**The reader is not available right now** (no usable model is installed). "
               "Please try again later.")
# Model-panel rows that are the server's internals: file and run paths, code checkout.
INTERNAL_ROWS = ("File", "Run", "Code")


def public_rows(rows: Mapping[str, str]) -> dict[str, str]:
    """The model panel's rows for a visitor: no paths, and no command lines (a row's advice
    to run a command is the owner's business)."""
    return {name: value.split("; refit with `")[0] for name, value in rows.items()
            if name not in INTERNAL_ROWS and "`" not in value.split("; refit with `")[0]}
