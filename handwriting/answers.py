"""What a reading means for a person, in words: an answer, "not sure", or "not a digit".

One home for these texts so the app, the CLI and the HTTP API say the same thing. The
verdict itself is decided by the model's calibration (``calibration.py``); this module
only words it. A "not sure" answer shows the two best guesses instead of one
confident-looking wrong digit.
"""

from __future__ import annotations

from collections.abc import Sequence

from handwriting.calibration import NOT_A_DIGIT, NOT_SURE
from handwriting.inference import Prediction


def percent(value: float) -> str:
    return f"{100 * value:.0f} %"


def best_guesses(prediction: Prediction, k: int = 2) -> str:
    """ "4 (48 %) or 9 (41 %)" """
    return " or ".join(f"{label} ({percent(p)})" for label, p in prediction.top_k(k))


def headline(prediction: Prediction) -> str:
    """The short answer: "7", "4 or 9?" or "not a digit"-like text for a metric tile."""
    if prediction.verdict == NOT_A_DIGIT:
        return "—"
    if prediction.verdict == NOT_SURE:
        return " or ".join(label for label, _ in prediction.top_k(2)) + "?"
    return prediction.label


def explanation(prediction: Prediction, noun: str = "digit") -> str:
    """One or two sentences for anything that is not a plain answer ("" for an answer)."""
    if prediction.verdict == NOT_A_DIGIT:
        return (f"That does not look like a {noun}. Draw or upload one {noun}, large and "
                f"alone: scribbles, shapes, letters and photos are not read.")
    if prediction.verdict == NOT_SURE:
        return (f"Not sure: maybe {best_guesses(prediction)}. Write it again, larger and "
                f"clearer, or check it yourself.")
    return ""


def cli_line(prediction: Prediction, noun: str = "digit") -> str:
    """``predict``'s line for one image."""
    if prediction.verdict == NOT_A_DIGIT:
        return f"not a {noun} (junk score {percent(prediction.junk_score or 0.0)})"
    if prediction.verdict == NOT_SURE:
        return f"not sure: {best_guesses(prediction)}"
    top = ", ".join(f"{label} {p:.1%}" for label, p in prediction.top_k(3))
    return f"{prediction.label} ({prediction.confidence:.1%})  top-3: {top}"


def weakest_index(confidences: Sequence[float]) -> int | None:
    """The position of the least sure character (None for none)."""
    return min(range(len(confidences)), key=confidences.__getitem__) if confidences else None


def character_note(confidence: float, weakest: bool, threshold: float | None) -> str:
    """The mark under a character of a whole number: "not sure" below the model's answer
    threshold, "least sure" for the weakest character of the line otherwise."""
    if threshold is not None and confidence < threshold:
        return "not sure"
    return "least sure" if weakest else ""


def confidence_help(calibrated: bool) -> str:
    if calibrated:
        return ("Calibrated on held-out data: of the answers given at 90 %, about 90 % are "
                "right. Below the model's threshold it says it is not sure (see the sidebar).")
    return "The model's raw softmax probability: this model has no calibration."
