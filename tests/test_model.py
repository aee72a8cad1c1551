"""The MLP: architecture, outputs, hyperparameter checks, checkpoint round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from handwriting.inference import Predictor
from handwriting.model import MLPClassifier


def test_reference_architecture() -> None:
    model = MLPClassifier()
    linears = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 128), (128, 128), (128, 10)]
    assert model.hparams["lr"] == 1e-3


def test_outputs_are_probabilities_for_any_image_shape() -> None:
    model = MLPClassifier(hidden_sizes=[32], num_classes=26)
    for shape in [(4, 784), (4, 28, 28), (4, 1, 28, 28)]:
        probs = model.predict_proba(torch.rand(shape))
        assert probs.shape == (4, 26)
        torch.testing.assert_close(probs.sum(dim=1), torch.ones(4))


def test_options_build_the_stronger_mlp() -> None:
    model = MLPClassifier(hidden_sizes=[64, 64, 32], dropout=0.2, batch_norm=True)
    kinds = [type(m).__name__ for m in model.net]
    assert kinds.count("BatchNorm1d") == 3 and kinds.count("Dropout") == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden_sizes": []}, "at least one layer"),
        ({"hidden_sizes": [128, 0]}, "positive integers"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"lr": -1e-3}, "lr must be > 0"),
        ({"dropout": 1.0}, "dropout"),
        ({"scheduler": "warp"}, "scheduler"),
        ({"num_classes": 1}, "at least 2 classes"),
    ],
)
def test_invalid_hyperparameters_fail_clearly(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MLPClassifier(**kwargs)


def test_training_learns_and_checkpoint_round_trips(tmp_path: Path) -> None:
    """A separable toy problem: accuracy must rise far above chance; the saved
    checkpoint loads with Lightning (no Hydra) and with the safe loader, same outputs."""
    pl.seed_everything(0)
    y = torch.randint(0, 2, (600,))
    x = torch.rand(600, 784) * 0.5
    x[:, :100] += 0.3 * y[:, None]  # class 1 is brighter in the first 100 pixels
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    model = MLPClassifier(hidden_sizes=[32], num_classes=2, lr=1e-2)
    trainer = pl.Trainer(max_epochs=5, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, loader)
    accuracy = (model.predict_proba(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.85
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = MLPClassifier.load_from_checkpoint(path, weights_only=True)
    safe = Predictor.from_checkpoint(path)
    torch.testing.assert_close(loaded.predict_proba(x[:8]), model.predict_proba(x[:8]))
    torch.testing.assert_close(torch.from_numpy(safe.probabilities(x[:8].numpy())),
                               model.predict_proba(x[:8]))
