"""The drawing canvas's content as the app keeps it between page runs: Clear, Undo and
bringing a drawing back after the canvas was away (a mode switch).

Why: streamlit-drawable-canvas keeps its strokes in the browser only. Its own undo and
reset sit in a toolbar that appears on hover (nothing to hover on a phone), and a canvas
that leaves the page (switching mode and back) comes back empty while the page still held
the answer for the old drawing. The canvas redraws whatever ``initial_drawing`` it is
given whenever that value changes, and sends the result back; so the app keeps the last
drawing it received (its fabric.js JSON and its pixels) and steers the canvas through
``initial_drawing``. Each value carries a ``revision`` so that two equal drawings (say,
empty after Clear, and empty after undoing the only stroke) still count as a change.
A redraw also restarts the component's own undo history at the drawing it loads, so its
toolbar's "Reset canvas & history" goes back to that drawing: the app only redraws on
Clear, Undo and a canvas coming back (``came_back``), never in between, so a drawing made
from an empty canvas is emptied by that reset. Plain functions on plain dicts: testable
without Streamlit.
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping
from typing import Any

import numpy as np


def _keys(name: str) -> tuple[str, str]:
    return f"{name}_initial", f"{name}_last"


def initial_drawing(state: MutableMapping[str, Any], name: str) -> dict[str, Any]:
    """What to pass as canvas ``name``'s ``initial_drawing`` in this run."""
    initial, _ = _keys(name)
    return state.setdefault(initial, {"objects": [], "revision": 0})


def _set(state: MutableMapping[str, Any], name: str, objects: list[Any]) -> None:
    initial, _ = _keys(name)
    revision = int(initial_drawing(state, name).get("revision", 0)) + 1
    state[initial] = {"objects": objects, "revision": revision}


def remember(
    state: MutableMapping[str, Any], name: str, json_data: dict[str, Any] | None,
    rgba: np.ndarray | None,
) -> np.ndarray | None:
    """Keep what the canvas sent this run and return the pixels to read. A canvas that
    has just come back sends nothing until it is drawn on, yet shows the drawing restored
    into it: then the pixels kept from before stand for it (they are that drawing)."""
    _, last = _keys(name)
    if rgba is not None:
        state[last] = (json_data, rgba)
        return rgba
    kept = state.get(last)
    return kept[1] if kept is not None else None


def objects(state: MutableMapping[str, Any], name: str) -> list[Any]:
    """The strokes of the last drawing received from canvas ``name``."""
    kept = state.get(_keys(name)[1])
    json_data = kept[0] if kept is not None else None
    return list((json_data or {}).get("objects") or [])


def clear(state: MutableMapping[str, Any], name: str) -> None:
    """An empty canvas (the kept drawing is forgotten, so nothing is restored later)."""
    state.pop(_keys(name)[1], None)
    _set(state, name, [])


def undo(state: MutableMapping[str, Any], name: str) -> bool:
    """Redraw canvas ``name`` without its last stroke; False when there was none."""
    strokes = objects(state, name)
    if not strokes:
        return False
    _set(state, name, strokes[:-1])
    return True


def came_back(state: MutableMapping[str, Any], widget_key: str) -> bool:
    """Whether the canvas widget ``widget_key`` is (re)entering the page: Streamlit keeps a
    keyed widget's value in session state while the widget is on the page and drops it after
    the first *completed* run without it. A run cut short by a newer one (a stroke arriving
    while the page reruns) drops nothing, so a canvas that stayed on the page never counts
    as back -- restoring it then would reload the canvas, and reset its own toolbar's
    history to the restored drawing (its "Reset canvas" would then bring that drawing back
    instead of emptying the canvas)."""
    return widget_key not in state


def restore(state: MutableMapping[str, Any], name: str) -> None:
    """Redraw the last drawing received, for a canvas that was away from the page."""
    strokes = objects(state, name)
    if strokes:
        _set(state, name, strokes)


def digest(rgba: np.ndarray | None) -> str | None:
    """Identifies a drawing, so an answer is only shown with the drawing it was read from."""
    return hashlib.sha1(rgba.tobytes()).hexdigest() if rgba is not None else None
