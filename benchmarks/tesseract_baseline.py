"""Tesseract versus the MLP on the same test images: accuracy, per-class accuracy,
rejection rate (no answer) and time per image, side by side.

Tesseract runs as ``handwriting.ocr.TesseractReader`` with its measured best
single-character setup (``--psm 10``, digit whitelist, ~100 px glyph, light blur, wide
margin), through a small thread pool (one subprocess per image). The MLP is a checkpoint
(``--checkpoint``; default: the promoted model), or, when there is none or with
``--train-mlp``, the reference configuration (784-128-128-10, Adam 1e-3, batch 128,
best-validation epoch of 20) trained here with Lightning on the embedded 8k training split.

    python -m benchmarks.tesseract_baseline                 # embedded 1,000-image test split
    python -m benchmarks.tesseract_baseline --data mnist --mnist-dir DIR --limit 2000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import (
    NOISE_NOTE,
    BenchmarkError,
    add_data,
    cli,
    finish,
    load_data_config,
    load_predictor,
    machine_info,
    pct,
    percentiles,
    positive_int,
    quiet_lightning,
    run_main,
    set_threads,
    table,
    timed_map,
)
from handwriting.inference import Predictor, model_from_checkpoint, read_checkpoint
from handwriting.model_loading import promoted_model_path
from handwriting.ocr import TesseractReader, TesseractUnavailable, tesseract_version
from handwriting.serving import make_reader

REFERENCE = {"hidden_sizes": [128, 128], "lr": 1e-3, "batch_size": 128}
TRAIN_SEED = 42  # conf/config.yaml's seed
EPOCHS, WORKERS = 20, 2  # training epochs (best validation epoch kept); Tesseract processes



def train_reference(epochs: int, seed: int = TRAIN_SEED) -> tuple[Predictor, dict[str, Any]]:
    """Train the reference MLP on the embedded 8k split (conf/data/embedded.yaml) with
    Lightning, keep the best-validation epoch, as ``python train.py`` does."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from handwriting.model import MLPClassifier

    quiet_lightning()
    pl.seed_everything(seed, workers=True, verbose=False)
    datamodule = load_data_config("embedded")
    model = MLPClassifier(hidden_sizes=REFERENCE["hidden_sizes"], lr=REFERENCE["lr"],
                          num_classes=datamodule.num_classes, class_names=list(datamodule.classes))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint_cb = ModelCheckpoint(dirpath=tmp, monitor="val/acc", mode="max", save_top_k=1)
        pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, deterministic=True,
                   logger=False, enable_progress_bar=False, enable_model_summary=False,
                   num_sanity_val_steps=0, callbacks=[checkpoint_cb]).fit(model, datamodule=datamodule)
        best = model_from_checkpoint(read_checkpoint(checkpoint_cb.best_model_path))
        best_epoch = int(torch.load(checkpoint_cb.best_model_path, map_location="cpu",
                                    weights_only=True)["epoch"])
    metadata = {
        "trained_by": "benchmarks/tesseract_baseline.py",
        "data_source": "handwriting.data.embedded.EmbeddedMNIST",
        "data_fingerprint": datamodule.fingerprint,
        "sizes": datamodule.sizes(),
        "metrics": {"val/acc": float(checkpoint_cb.best_model_score), "epochs": float(epochs),
                    "best_epoch": float(best_epoch + 1),
                    "train_seconds": time.perf_counter() - started},
        "config": {"model": REFERENCE, "seed": seed, "max_epochs": epochs},
    }
    return Predictor(best, metadata), metadata


def resolve_model(args: argparse.Namespace) -> tuple[Predictor, str]:
    """(predictor, how it was obtained): --checkpoint, else the promoted model, else (or with
    --train-mlp) the reference MLP trained here."""
    path = args.checkpoint
    if path is None and not args.train_mlp:
        path = promoted_model_path()
        if not path.is_file():
            print(f"No promoted model at {path}: training the reference MLP here instead.")
            path = None
    if path is not None:
        predictor, description = load_predictor(path)
        return predictor, f"checkpoint {description}"
    predictor, meta = train_reference(args.epochs)
    if args.save_checkpoint is not None:
        args.save_checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": predictor.model.state_dict(),  # the layout promotion writes
                    "hyper_parameters": dict(predictor.model.hparams),
                    "handwriting": predictor.metadata}, args.save_checkpoint)
    return predictor, (
        f"reference MLP 784-128-128-10 trained here with Lightning on the embedded 8k split, "
        f"best validation epoch {meta['metrics']['best_epoch']:.0f} of {args.epochs} "
        f"(val acc {meta['metrics']['val/acc']:.4f})"
    )


def leakage_warning(metadata: dict[str, Any], data: str, fingerprint: str) -> str | None:
    """Say when the test images may have been in the model's training data."""
    source = str(metadata.get("data_source") or "")
    if data == "embedded":
        trained_on = metadata.get("data_fingerprint")
        if trained_on == fingerprint:
            return None
        if trained_on is None:
            return ("the checkpoint does not record its training data: the embedded test split "
                    "may overlap it, so the MLP's accuracy may be optimistic")
        return (f"the model was trained on other data (fingerprint {trained_on}, this split "
                f"{fingerprint}); if that included the embedded test images (e.g. full MNIST "
                "training data does) the MLP's accuracy is optimistic")
    if source.endswith(("EmbeddedMNIST", ".MNIST")):
        return None  # both training pools come from the official training file only
    return "the checkpoint does not record MNIST-based training data; overlap cannot be ruled out"



def scores(predicted: list[int | None], labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy counting rejections as errors, rejection rate, accuracy on answered images,
    per-class accuracy."""
    labels = np.asarray(labels)
    answered = np.array([p is not None for p in predicted])
    correct = np.array([p is not None and p == y for p, y in zip(predicted, labels, strict=True)])
    per_class = {}
    for index, name in enumerate(classes):
        mask = labels == index
        per_class[name] = {"n": int(mask.sum()),
                           "accuracy": float(correct[mask].mean()) if mask.any() else None}
    return {"n": len(labels), "correct": int(correct.sum()), "accuracy": float(correct.mean()),
            "rejected": int((~answered).sum()), "rejection_rate": float((~answered).mean()),
            "accuracy_answered": float(correct[answered].mean()) if answered.any() else None,
            "per_class": per_class, "_correct_mask": correct}


def evaluate_mlp(predictor: Predictor, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    start = time.perf_counter()
    probs = predictor.probabilities(images)
    batch_s = time.perf_counter() - start
    single = []
    for image in images[: min(len(images), 200)]:
        t0 = time.perf_counter_ns()
        predictor.predict(image)
        single.append((time.perf_counter_ns() - t0) / 1e6)
    result = scores([int(i) for i in probs.argmax(axis=1)], labels, predictor.classes)
    result["ms_per_image_batch"] = batch_s / len(images) * 1000
    result["latency_ms"] = percentiles(single)
    return result


def evaluate_tesseract(reader: TesseractReader, images: np.ndarray, labels: np.ndarray,
                       classes: list[str], workers: int) -> dict[str, Any]:
    index_of = {name: i for i, name in enumerate(classes)}
    start = time.perf_counter()
    outcomes, latencies = timed_map(reader.read_char, images, workers)
    wall = time.perf_counter() - start
    result = scores([None if r.rejected else index_of.get(r.text) for r in outcomes], labels, classes)
    result["ms_per_image_wall"] = wall / len(images) * 1000
    result["latency_ms"] = {**percentiles(latencies), "mean": float(np.mean(latencies))}
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    set_threads(args.threads)
    version = tesseract_version()
    if version is None:
        raise BenchmarkError(TesseractUnavailable("tesseract").args[0])
    datamodule = load_data_config(args.data, args.mnist_dir)
    test = datamodule.splits.test
    n_total = len(test)
    n = min(args.limit or n_total, n_total)
    images = test.images[:n].astype(np.float32) / 255.0
    labels = test.labels[:n]
    classes = list(datamodule.classes)

    predictor, model_desc = resolve_model(args)
    if predictor.classes != classes:
        raise BenchmarkError(f"the model's classes {predictor.classes} are not the data's {classes}")
    warning = leakage_warning(predictor.metadata, args.data, datamodule.fingerprint)
    if warning:
        print(f"WARNING: {warning}")
    mlp = evaluate_mlp(predictor, images, labels)
    reader = make_reader(classes)
    print(f"Running Tesseract {version} on {n:,} images with {args.workers} workers ...", flush=True)
    try:
        tess = evaluate_tesseract(reader, images, labels, classes, args.workers)
    except TesseractUnavailable as error:
        raise BenchmarkError(str(error)) from error
    m, t = mlp.pop("_correct_mask"), tess.pop("_correct_mask")
    agreement = {"both_correct": int((m & t).sum()), "only_mlp": int((m & ~t).sum()),
                 "only_tesseract": int((~m & t).sum()), "neither": int((~m & ~t).sum())}
    test_desc = ("embedded data's test split (conf/data/embedded.yaml: 8000/1000/1000, split_seed 0)"
                 if args.data == "embedded" else "official MNIST 10k test set (t10k files)")
    return {
        "benchmark": "tesseract_baseline",
        "machine": machine_info(),
        "config": {
            "data": args.data, "test_set": test_desc, "test_size_total": n_total, "n": n,
            "limited": n < n_total, "subset": f"first {n:,}" if n < n_total else "all",
            "data_fingerprint": datamodule.fingerprint,
            "model": model_desc, "model_metadata": {
                k: predictor.metadata.get(k) for k in ("data_source", "data_fingerprint", "metrics")
            },
            "leakage_warning": warning,
            "tesseract_version": version, "workers": args.workers,
            "tesseract_setup": {"psm": reader.psm_char, "whitelist": reader.whitelist,
                                "lang": reader.lang, "render": asdict(reader.render)},
            "torch_threads": torch.get_num_threads(),
        },
        "mlp": mlp,
        "tesseract": tess,
        "agreement": agreement,
        "note": NOISE_NOTE,
    }


def headline(p: dict[str, Any]) -> str:
    cfg, mlp, tess = p["config"], p["mlp"], p["tesseract"]
    return (f"accuracy, {cfg['test_set'].split(' (')[0]} ({cfg['n']:,} images): MLP "
            f"{pct(mlp['accuracy'])} vs Tesseract {pct(tess['accuracy'])} (Tesseract rejects "
            f"{pct(tess['rejection_rate'])}; {pct(tess['accuracy_answered'])} right when it answers)")


def markdown(p: dict[str, Any]) -> str:
    cfg, mlp, tess, agree = p["config"], p["mlp"], p["tesseract"], p["agreement"]
    setup = cfg["tesseract_setup"]
    rows = [
        ["accuracy (rejections count as errors)", pct(mlp["accuracy"]), pct(tess["accuracy"])],
        ["correct", f"{mlp['correct']:,} / {mlp['n']:,}", f"{tess['correct']:,} / {tess['n']:,}"],
        ["rejection rate (no answer)", pct(mlp["rejection_rate"]), pct(tess["rejection_rate"])],
        ["accuracy when answering", pct(mlp["accuracy_answered"]), pct(tess["accuracy_answered"])],
        ["ms per image, single call (p50)", f"{mlp['latency_ms']['p50']:.3f}",
         f"{tess['latency_ms']['p50']:.1f}"],
        ["ms per image, throughput", f"{mlp['ms_per_image_batch']:.4f} (one batch)",
         f"{tess['ms_per_image_wall']:.1f} ({cfg['workers']} workers)"],
    ]
    per_class = [[name, mlp["per_class"][name]["n"], pct(mlp["per_class"][name]["accuracy"]),
                  pct(tess["per_class"][name]["accuracy"])] for name in mlp["per_class"]]
    return "\n\n".join(filter(None, [
        f"Test images: {cfg['subset']} of the {cfg['test_size_total']:,} in the {cfg['test_set']}. "
        f"MLP: {cfg['model']}. Tesseract {cfg['tesseract_version']}: `--psm {setup['psm']}`, "
        f"whitelist `{setup['whitelist']}`, glyph redrawn dark-on-white at "
        f"{setup['render']['glyph_height']} px with a {setup['render']['pad']} px margin and blur "
        f"{setup['render']['blur']} (handwriting.ocr defaults). MLP timed with "
        f"{cfg['torch_threads']} torch thread(s); Tesseract runs one subprocess per image.",
        table(["", "MLP", "Tesseract"], rows),
        f"Both right {agree['both_correct']:,}, only the MLP {agree['only_mlp']:,}, only "
        f"Tesseract {agree['only_tesseract']:,}, neither {agree['neither']:,}.",
        cfg.get("leakage_warning") and f"**Warning:** {cfg['leakage_warning']}.",
        "<details><summary>Per-class accuracy</summary>\n\n"
        + table(["class", "images", "MLP", "Tesseract"], per_class) + "\n\n</details>",
    ]))


def main(argv: list[str] | None = None) -> int:
    p = cli(__doc__)
    add_data(p)
    p.add_argument("--limit", type=positive_int, default=None,
                   help="only the first N test images (Tesseract takes ~50-100 ms per image)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="MLP checkpoint (default: the promoted model, "
                   "$HANDWRITING_MODEL_DIR/model.ckpt or models/promoted/model.ckpt)")
    p.add_argument("--train-mlp", action="store_true",
                   help="train the reference MLP here even if a promoted model exists")
    p.add_argument("--save-checkpoint", type=Path, default=None,
                   help="save the MLP trained here (reuse it with --checkpoint)")
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run (20 images; 1 epoch if training): checks, not numbers")
    args = p.parse_args(argv)
    args.epochs, args.workers = EPOCHS, WORKERS
    if args.quick:
        args.limit = min(args.limit or 20, 20)
        args.epochs = 1
    if args.checkpoint is not None and args.train_mlp:
        raise BenchmarkError("use either --checkpoint or --train-mlp, not both")
    payload = run(args)
    return finish(payload, markdown(payload), args.json_out)


if __name__ == "__main__":
    sys.exit(run_main(main))
