"""Confidence on real drawings: calibration error, "not sure" and "not a digit".

Fits a model's calibration as training does (``ConfidenceFit``: temperature and answer
threshold on the validation writers' drawings, the junk detector on packaged MNIST and
training writers' strokes against generated junk), then measures it on the test writers'
drawings (on the app's canvas) and test junk. Baselines for "not a digit", at the same share
of validation digits refused: the classifier's calibrated top probability and its energy
(log-sum-exp of the logits). Writes the table, a reliability diagram and the JSON.

    python -m benchmarks.confidence --model models/promoted \\
        --pendigits-cache /work/shared/data/pendigits
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

from benchmarks import common
from handwriting.calibration import reliability_bins, softmax
from handwriting.confidence import HOLDOUT, ConfidenceFit, junk_refused, logits_of, score
from handwriting.data.embedded import EmbeddedMNIST
from handwriting.data.pen_source import PenDigits
from handwriting.junk import KINDS, cached_junk

MEASURES = [  # (row, key of the measured results, target)
    ("expected calibration error, raw softmax", "ece_uncalibrated", None),
    ("expected calibration error, calibrated", "ece", ("<=", 0.02)),
    ("drawings answered (not 'not sure', not refused)", "answered", (">=", 0.95)),
    ("answered drawings that are right", "answered_acc", (">=", 0.995)),
    ("real digits refused as 'not a digit'", "digits_refused", ("<=", 0.02)),
    ("MNIST digits refused (1,000 the detector never saw)", "mnist_digits_refused", None),
    ("junk refused", "junk_refused", (">=", 0.95)),
]


def verdict(value: float, op: str, goal: float) -> str:
    met = value <= goal if op == "<=" else value >= goal
    return f"{op} {goal:.1%}: {'met' if met else 'NOT met'}"


def reliability_plot(logits: np.ndarray, temperature: float, labels: np.ndarray,
                     path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for ax, t, title in ((axes[0], 1.0, "raw softmax"), (axes[1], temperature, "calibrated")):
        bins = [b for b in reliability_bins(softmax(logits, t), labels) if b["count"]]
        accuracy = [b["accuracy"] for b in bins]
        ax.bar([(b["low"] + b["high"]) / 2 for b in bins], accuracy, width=1 / 15,
               edgecolor="black", alpha=0.7, label="accuracy in bin")
        ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
        ax.plot([b["confidence"] for b in bins], accuracy, "o", color="C3",
                label="(mean confidence, accuracy)")
        ax.set(title=f"{title}: test writers' drawings", xlabel="confidence", xlim=(0, 1),
               ylim=(0, 1))
    axes[0].set_ylabel("accuracy")
    axes[1].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = common.cli(__doc__, threads=False, json_out=False)  # the JSON goes beside --out
    parser.add_argument("--model", type=Path, required=True, help="a checkpoint or a promoted dir")
    common.add_pendigits(parser)
    parser.add_argument("--junk", type=common.positive_int, default=2000, help="test junk inputs")
    parser.add_argument("--junk-count", type=common.positive_int, default=12000,
                        help="training junk for the detector (as conf/config.yaml)")
    parser.add_argument("--detector-epochs", type=common.positive_int, default=30)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("CONFIDENCE.md"))
    args = parser.parse_args(argv)

    path = args.model / "model.ckpt" if args.model.is_dir() else args.model
    model = common.load_predictor(path)[0].model
    data = PenDigits(cache_dir=args.pendigits_cache, download=False, unipen_file=args.unipen_file,
                     val_writers=args.val_writers, test_writers=args.test_writers).load()
    fit = ConfidenceFit(junk_count=args.junk_count, detector_epochs=args.detector_epochs)
    calibration = fit.fit(model, model.class_names, data.val, "validation writers' drawings",
                          data.val_writers, data.train)
    detector, threshold = calibration.detector, calibration.junk_threshold
    junk = cached_junk(args.junk, "test")
    measured = score(model, calibration, data.test, junk)
    mnist_holdout = EmbeddedMNIST().load().train.images[-HOLDOUT:]
    measured["mnist_digits_refused"] = float(
        (detector.junk_probability(mnist_holdout) > threshold).mean())
    refused = junk.blank | (detector.junk_probability(junk.images) > threshold)
    per_kind = {k: float(refused[junk.kinds == k].mean()) for k in KINDS}
    val_logits, junk_logits = logits_of(model, data.val.images), logits_of(model, junk.images)
    baselines = {}
    for name, fn in (("top probability", lambda z: -softmax(z, calibration.temperature).max(1)),
                     ("energy", lambda z: -logsumexp(z, axis=1))):
        cut = np.quantile(fn(val_logits), 1 - fit.digit_refusal)
        baselines[name] = junk_refused(fn(junk_logits), junk, cut)

    plot = args.out.with_name("confidence_reliability.png")
    reliability_plot(logits_of(model, data.test.images), calibration.temperature,
                     data.test.labels, plot)
    summary = calibration.summary()
    writers = len(set(data.test_writers.tolist()))
    results = {"model": str(path), "calibration": summary, "test": measured,
               "junk_refused_by_kind": per_kind, "junk_baselines": baselines,
               "test_drawings": len(data.test), "test_writers": writers, "junk": len(junk)}
    rows = [[name, f"{measured[key]:.2%}", verdict(measured[key], *target) if target else ""]
            for name, key, target in MEASURES]
    text = "\n".join([
        "# Confidence on real drawings", "",
        f"Model `{path}`; {len(data.test)} drawings by {writers} held-out test writers, drawn on "
        f"the app's canvas; {len(junk)} test junk inputs. Calibration fitted on the "
        f"{len(set(data.val_writers.tolist()))} validation writers' drawings: temperature "
        f"{summary['temperature']:.3f}, answer threshold {summary['answer_threshold']:.3f}, junk "
        f"threshold {summary['junk_threshold']:.3f}. Produced by `python -m benchmarks.confidence "
        f"--model {args.model}`.", "",
        common.table(["measure", "value", "target"], rows), "",
        "Junk refused by kind (preprocessing's 'blank' counts as refused):", "",
        common.table(["kind", "refused"], [[k, f"{v:.1%}"] for k, v in per_kind.items()]), "",
        "The classifier alone as a junk score, at the same 1% of validation digits refused:", "",
        common.table(["score", "junk refused"], [[k, f"{v:.1%}"] for k, v in baselines.items()]), "",
        f"![reliability diagram]({plot.name})", "",
    ])
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(common.run_main(main))
