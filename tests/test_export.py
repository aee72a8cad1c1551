"""`handwriting export` (handwriting/export.py): ONNX and TorchScript files that give the
PyTorch model's probabilities on the real embedded test split (onnxruntime, max abs
difference <= 1e-5, same accuracy), a contract.json that says how to feed them, and files
that load in a fresh interpreter where `handwriting` cannot even be imported."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from handwriting import cli
from handwriting.data.datamodule import HandwritingDataModule
from handwriting.data.embedded import EmbeddedMNIST
from handwriting.export import CONTRACT_FILE, ONNX_FILE, TORCHSCRIPT_FILE
from handwriting.model import MLPClassifier

PARITY = 1e-5
CALIBRATION = {"version": 1, "temperature": 1.37, "answer_threshold": 0.6, "fitted_on": "test"}


@pytest.fixture(scope="module")
def splits() -> HandwritingDataModule:
    """The embedded digits split as `handwriting evaluate --data embedded` splits them."""
    datamodule = HandwritingDataModule(EmbeddedMNIST(), split={"train": 8000, "val": 1000, "test": 1000})
    datamodule.setup()
    return datamodule


@pytest.fixture(scope="module")
def trained(splits: HandwritingDataModule, tmp_path_factory: pytest.TempPathFactory) -> tuple[MLPClassifier, Path]:
    """A small MLP with batch norm and dropout (both behave differently in eval mode: the
    export must freeze them), trained 2 epochs on the train split, saved as promotion does."""
    torch.manual_seed(0)
    model = MLPClassifier(hidden_sizes=[64, 32], batch_norm=True, dropout=0.1, lr=3e-3)
    x, y = splits.eval_dataset("train").tensors
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(2):
        for batch in torch.randperm(len(x), generator=generator).split(128):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    path = tmp_path_factory.mktemp("export-model") / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "handwriting": {"metrics": {"val/acc": 0.9, "test/acc": 0.9},
                                "calibration": CALIBRATION}}, path)
    return model, path


@pytest.fixture(scope="module")
def exported(trained: tuple[MLPClassifier, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exported")
    assert cli.main(["export", "--model", str(trained[1].parent), "--out", str(out)]) == 0
    return out


def test_onnx_matches_pytorch_on_the_test_split(trained, exported: Path, splits) -> None:
    model, _ = trained
    x, y = splits.eval_dataset("test").tensors
    images = x.reshape(-1, 28, 28).numpy()
    with torch.inference_mode():
        expected = torch.softmax(model(x), dim=-1).numpy()
    session = ort.InferenceSession(str(exported / ONNX_FILE), providers=["CPUExecutionProvider"])
    logits, probabilities = session.run(["logits", "probabilities"], {"image": images})
    diff = float(np.abs(probabilities - expected).max())
    labels = y.numpy()
    torch_acc = float((expected.argmax(1) == labels).mean())
    onnx_acc = float((probabilities.argmax(1) == labels).mean())
    print(f"\nONNX vs PyTorch on {len(labels)} embedded test digits: max |dp| = {diff:.2e}, "
          f"accuracy {onnx_acc:.4f} vs {torch_acc:.4f}")
    assert diff <= PARITY
    assert onnx_acc == torch_acc
    assert (probabilities.argmax(1) == expected.argmax(1)).all()
    assert torch_acc > 0.85  # a real model, not chance
    # One image at a time too (the batch dimension is dynamic).
    single = session.run(["probabilities"], {"image": images[:1]})[0]
    assert np.abs(single - expected[:1]).max() <= PARITY
    calibrated = torch.softmax(torch.as_tensor(logits) / CALIBRATION["temperature"], dim=-1)
    assert (calibrated.argmax(1).numpy() == probabilities.argmax(1)).all()


def test_torchscript_matches_pytorch(trained, exported: Path, splits) -> None:
    model, _ = trained
    x, _ = splits.eval_dataset("test").tensors
    scripted = torch.jit.load(str(exported / TORCHSCRIPT_FILE))
    with torch.inference_mode():
        expected = torch.softmax(model(x), dim=-1)
        got = scripted(x.reshape(-1, 28, 28))[1]
    assert float((got - expected).abs().max()) <= PARITY


def test_contract_says_how_to_feed_the_model(trained, exported: Path) -> None:
    contract = json.loads((exported / CONTRACT_FILE).read_text())
    assert contract["input"]["shape"] == ["batch", 28, 28]
    assert contract["input"]["dtype"] == "float32"
    assert contract["input"]["range"] == [0.0, 1.0]
    assert "white ink on black" in contract["input"]["polarity"]
    assert contract["classes"] == [str(d) for d in range(10)]
    assert contract["calibration"] == CALIBRATION  # copied as the model's metadata has it
    assert contract["outputs"]["probabilities"]["shape"] == ["batch", 10]
    assert contract["model"]["hidden_sizes"] == [64, 32]
    for entry in contract["files"].values():
        assert hashlib.sha256((exported / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]


CONSUMER = textwrap.dedent("""
    # A consumer with no handwriting package: importing it must fail.
    import importlib.abc, json, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "handwriting" or name.startswith("handwriting."):
                raise ImportError("handwriting must not be needed to use an exported model")

    sys.meta_path.insert(0, Refuse())
    import numpy as np
    import onnxruntime
    import torch

    folder, images = sys.argv[1], np.load(sys.argv[2])
    contract = json.load(open(f"{folder}/contract.json"))
    assert list(images.shape[1:]) == contract["input"]["shape"][1:]
    session = onnxruntime.InferenceSession(f"{folder}/" + contract["files"]["onnx"]["path"])
    onnx_probs = session.run(["probabilities"], {contract["input"]["name"]: images})[0]
    scripted = torch.jit.load(f"{folder}/" + contract["files"]["torchscript"]["path"])
    script_probs = scripted(torch.from_numpy(images))[1].detach().numpy()
    classes = contract["classes"]
    print(json.dumps({"onnx": [classes[i] for i in onnx_probs.argmax(1)],
                      "torchscript": [classes[i] for i in script_probs.argmax(1)],
                      "handwriting_imported": any(m.startswith("handwriting") for m in sys.modules)}))
""")


@pytest.mark.slow  # starts a process
def test_exported_files_load_without_handwriting(trained, exported: Path, splits, tmp_path: Path) -> None:
    model, _ = trained
    x, _ = splits.eval_dataset("test").tensors
    images = x[:50].reshape(-1, 28, 28).numpy()
    np.save(tmp_path / "images.npy", images)
    (tmp_path / "consumer.py").write_text(CONSUMER)
    result = subprocess.run([sys.executable, "-I", str(tmp_path / "consumer.py"), str(exported),
                             str(tmp_path / "images.npy")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    with torch.inference_mode():
        expected = [str(i) for i in model(x[:50]).argmax(1).tolist()]
    assert answers == {"onnx": expected, "torchscript": expected, "handwriting_imported": False}


def test_export_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "No model file" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_onnx_accuracy_equals_pytorch_on_the_official_test_set(trained, exported: Path,
                                                                mnist_dir: Path) -> None:
    """The official MNIST 10k test set (skipped where shared/ has no MNIST files)."""
    from handwriting.data.mnist import MNIST

    test = MNIST(str(mnist_dir), download=False).load().test
    assert test is not None
    images = test.images.astype(np.float32) / 255.0
    with torch.inference_mode():
        expected = torch.softmax(trained[0](torch.from_numpy(images)), dim=-1).numpy()
    session = ort.InferenceSession(str(exported / ONNX_FILE), providers=["CPUExecutionProvider"])
    probabilities = session.run(["probabilities"], {"image": images})[0]
    diff = float(np.abs(probabilities - expected).max())
    onnx_acc = float((probabilities.argmax(1) == test.labels).mean())
    torch_acc = float((expected.argmax(1) == test.labels).mean())
    print(f"\nONNX vs PyTorch on the official {len(images)} MNIST test digits: max |dp| = "
          f"{diff:.2e}, accuracy {onnx_acc:.4f} vs {torch_acc:.4f}")
    assert diff <= PARITY
    assert onnx_acc == torch_acc
