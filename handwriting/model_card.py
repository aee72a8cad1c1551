"""The loaded model described for a person (the app's model panel): what it is, how well
it read held-out data and real drawings, how far to trust its confidence.

Architecture facts come from the checkpoint's hyperparameters (what was actually
loaded); accuracies, data and dates from the promotion metadata, which a hand-copied
checkpoint may lack (shown as "n/a").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from handwriting.inference import Predictor
from handwriting.provenance import describe_code


def format_accuracy(value: Any) -> str:
    """0.9213 -> "92.13 %"; missing -> "n/a"."""
    try:
        return f"{100.0 * float(value):.2f} %"
    except (TypeError, ValueError):
        return "n/a"


def describe_model(predictor: Predictor, path: str | Path) -> list[tuple[str, str]]:
    """(label, value) rows about the loaded model for the app's model panel."""
    hp = dict(predictor.model.hparams)
    meta = predictor.metadata or {}
    metrics = meta.get("metrics") or {}
    config = meta.get("config") or {}
    hidden = [int(h) for h in hp.get("hidden_sizes", [])]
    sizes = [int(hp.get("input_size", 784)), *hidden, len(predictor.classes)]
    extras = [
        name
        for name, on in (
            (f"dropout {hp.get('dropout')}", float(hp.get("dropout", 0) or 0) > 0),
            ("batch norm", bool(hp.get("batch_norm"))),
        )
        if on
    ]
    classes = predictor.classes
    class_text = " ".join(classes) if len(classes) <= 20 else f"{len(classes)} classes"
    lr = hp.get("lr", (config.get("model") or {}).get("lr"))
    rows = [
        ("File", str(path)),
        ("Validation accuracy", format_accuracy(metrics.get("val/acc"))),
        ("Test accuracy", format_accuracy(metrics.get("test/acc"))),
        ("Real drawings (held-out writers)", describe_drawn(metrics)),
        ("Confidence", describe_calibration(predictor)),
        ("Train accuracy (clean)", format_accuracy(metrics.get("train_clean/acc"))),
        (
            "Architecture",
            "MLP "
            + " → ".join(str(s) for s in sizes)
            + (f" ({', '.join(extras)})" if extras else ""),
        ),
        ("Hidden sizes", str(hidden)),
        ("Learning rate", f"{float(lr):g}" if lr is not None else "n/a"),
        ("Epochs", f"{int(metrics['epochs'])}" if "epochs" in metrics else "n/a"),
        ("Data source", str(meta.get("data_source") or "n/a")),
        ("Classes", class_text),
        ("Promoted at", str(meta.get("promoted_at") or "n/a")),
        ("Run", str(meta.get("run_dir") or "n/a")),
        ("Code", describe_code(meta.get("code"))),
    ]
    return rows


def describe_calibration(predictor: Predictor) -> str:
    """How far to trust the confidence shown, in words (calibration.py)."""
    calibration = predictor.calibration
    if calibration is None:
        return (f"{predictor.calibration_note}; refit with `handwriting calibrate --model <file>`"
                if "ignored" in predictor.calibration_note else
                "not calibrated: the raw softmax, often over-confident on new writers")
    refuses = "; refuses what is not a digit" if calibration.detector is not None else ""
    return (f"calibrated on {calibration.fitted_on} (temperature {calibration.temperature:.2f}); "
            f"says it is not sure below {100 * calibration.answer_threshold:.0f} %{refuses}")


def describe_drawn(metrics: dict) -> str:
    """drawn/acc in words, or a plain statement that the model was never scored on real
    drawings (then its test accuracy may promise far more than it reads)."""
    if metrics.get("drawn/acc") is None:
        return "never scored on real drawings: its test accuracy may overstate what it reads"
    worst = metrics.get("drawn/worst_writer_acc")
    return (f"{format_accuracy(metrics['drawn/acc'])} (worst writer "
            f"{format_accuracy(worst) if worst is not None else 'n/a'})")

