"""Shared test setup: never touch the network, never write into the project's models/."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"

os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ.setdefault("HANDWRITING_ROOT", str(ROOT))
os.environ.setdefault("PYTHONHASHSEED", "0")
# One thread per process: on a small shared machine torch's default thread pool makes tiny
# models many times slower, and subprocesses (train.py, streamlit) inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# A small junk detector for every training run in the tests (conf/config.yaml `confidence:`):
# the full one (12,000 junk inputs, 30 epochs) is measured by benchmarks/confidence.py.
os.environ.setdefault("HANDWRITING_JUNK_COUNT", "300")
os.environ.setdefault("HANDWRITING_DETECTOR_EPOCHS", "2")


@pytest.fixture(autouse=True)
def _isolated_model_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Code that falls back to the default promoted or drawings dir writes to a temp dir."""
    monkeypatch.setenv("HANDWRITING_MODEL_DIR", str(tmp_path_factory.mktemp("promoted-default")))
    monkeypatch.setenv("HANDWRITING_DRAWINGS_DIR", str(tmp_path_factory.mktemp("drawings-default")))


@pytest.fixture
def mnist_dir() -> Path:
    """The official MNIST files as an already-filled cache (tests skip where absent)."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"official MNIST files not at {SHARED_MNIST}")
    return SHARED_MNIST


def python() -> str:
    return sys.executable


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """Tiny models: on a busy 2-core machine torch's thread pool makes them many times slower."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mnist():
    """A sample of the embedded MNIST digits (images, labels) shared by the app/reading tests."""
    from tests.browser_helpers import load_mnist_sample

    return load_mnist_sample()


@pytest.fixture(scope="session")
def trained_model(mnist):
    """A small MLP trained in-process on that sample (seconds), shared across test files."""
    from tests.browser_helpers import train_tiny_model

    return train_tiny_model(*mnist)
