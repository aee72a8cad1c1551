"""`+experiment=app_model` end to end, as a user runs it, on stand-in data: the embedded
MNIST digits in place of the official files and a synthetic UNIPEN file in place of UCI's
(CI has neither download), so the experiment's own config (mix of sources, weights, strong
MLP, drawn evaluation, promotion by drawn/val_acc) is what is exercised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_real_drawings import TRAIN_FILE, _digit_png, write_pen_dir
from tests.test_train import run_train

pytestmark = pytest.mark.slow

STAND_IN = [
    "~data.source.parts.mnist.source",
    "+data.source.parts.mnist.source={_target_:handwriting.data.embedded.EmbeddedMNIST}",
    "data.source.parts.mnist.split={train:2000,val:300,test:300}",
    "pendigits.val_writers=2", "pendigits.test_writers=2",
    "model.hidden_sizes=[64,64]", "trainer.max_epochs=2", "logger=csv",
]


def test_app_model_trains_on_the_mix_scores_drawings_and_promotes(tmp_path: Path) -> None:
    pen = write_pen_dir(tmp_path / "pen") / TRAIN_FILE
    drawings = tmp_path / "drawings" / "train" / "7"  # one saved drawing joins as its own part
    drawings.mkdir(parents=True)
    _digit_png(drawings / "a.png", "7")

    run_dir, promoted = tmp_path / "run", tmp_path / "promoted"
    result = run_train("+experiment=app_model", *STAND_IN, f"pendigits.unipen_file={pen}",
                       f"data.source.parts.drawings.source.root={tmp_path / 'drawings'}",
                       f"hydra.run.dir={run_dir}", f"promote.dir={promoted}", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["data_source"] == "mix(mnist+pendigits+drawings)"
    assert summary["sizes"]["test"] == 300  # the test set is the MNIST part's (test_from)
    metrics = summary["metrics"]
    assert 0.0 <= metrics["drawn/worst_writer_acc"] <= metrics["drawn/acc"] <= 1.0
    assert summary["drawn_fingerprint"] and summary["drawn_unavailable"] is None
    meta = json.loads((promoted / "model.json").read_text())
    assert meta["drawn_fingerprint"] == summary["drawn_fingerprint"]
    assert meta["metrics"]["drawn/acc"] == pytest.approx(metrics["drawn/acc"])
    assert "real drawings by held-out writers" in result.stdout
