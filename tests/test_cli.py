"""The `handwriting` command: promote, summarize, info, predict, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handwriting.cli import main
from handwriting.promoted_dir import current_metadata
from tests.helpers import make_run_dir


def test_promote_picks_the_best_run_of_a_sweep(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for i, score in enumerate([0.7, 0.9, 0.8]):
        make_run_dir(tmp_path / "sweep" / str(i), score, seed=i)
    assert main(["promote", str(tmp_path / "sweep"), "--to", str(tmp_path / "promoted")]) == 0
    assert "Promoted" in capsys.readouterr().out
    assert current_metadata(tmp_path / "promoted")["metrics"]["val/acc"] == 0.9
    assert main(["info", "--model", str(tmp_path / "promoted")]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"]["val/acc"] == 0.9


def test_summarize_writes_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for i, score in enumerate([0.7, 0.9]):
        run = make_run_dir(tmp_path / str(i), score, seed=i)
        summary = json.loads((run / "run.json").read_text())
        summary["config"]["model"] = {"lr": 10.0 ** -(i + 2), "hidden_sizes": [16]}
        (run / "run.json").write_text(json.dumps(summary))
    assert main(["summarize", str(tmp_path), "--no-promote"]) == 0
    out = capsys.readouterr().out.splitlines()
    ranked = [line for line in out if line.strip().startswith(("1 ", "2 "))]
    assert "90.00%" in ranked[0] and "70.00%" in ranked[1]
    assert (tmp_path / "summary.png").is_file() and (tmp_path / "summary.md").is_file()


def test_info_and_predict_without_model_say_how_to_train(tmp_path: Path, capsys) -> None:
    assert main(["info", "--model", str(tmp_path)]) == 1
    assert "python train.py" in capsys.readouterr().out
    assert main(["predict", "x.png", "--model", str(tmp_path)]) == 2
    assert "python train.py" in capsys.readouterr().err


def test_predict_reports_bad_files_and_reads_good_ones(tmp_path: Path, capsys) -> None:
    make_run_dir(tmp_path / "run", 0.9)
    main(["promote", str(tmp_path / "run"), "--to", str(tmp_path / "promoted")])
    image = np.zeros((60, 60), np.uint8)
    image[10:50, 28:33] = 255
    Image.fromarray(image).save(tmp_path / "one.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    status = main(["predict", str(tmp_path / "one.png"), str(tmp_path / "broken.png"),
                   "--model", str(tmp_path / "promoted")])
    captured = capsys.readouterr()
    assert status == 1
    assert "one.png:" in captured.out and "top-3" in captured.out
    assert "broken.png: error" in captured.err


def test_predict_reads_the_images_in_a_folder(tmp_path: Path, capsys) -> None:
    make_run_dir(tmp_path / "run", 0.9)
    main(["promote", str(tmp_path / "run"), "--to", str(tmp_path / "promoted")])
    capsys.readouterr()
    folder = tmp_path / "drawings"
    folder.mkdir()
    image = np.zeros((60, 60), np.uint8)
    image[10:50, 28:33] = 255
    for name in ("b.png", "a.png"):
        Image.fromarray(image).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    status = main(["predict", str(folder), str(tmp_path / "empty"),
                   "--model", str(tmp_path / "promoted")])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(folder / "a.png"), str(folder / "b.png")]
    assert "no such file" not in captured.err
    assert f"{tmp_path / 'empty'}: error: it is a folder with no images" in captured.err
    assert status == 1


def test_mnist_hint_names_the_explicit_folder(tmp_path: Path, monkeypatch) -> None:
    from handwriting.data.download import DownloadError
    from handwriting.data.mnist import MNIST

    monkeypatch.setenv("HANDWRITING_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DownloadError) as info:
        MNIST(str(tmp_path / "mine"), download=False).load()
    message = str(info.value)
    assert str(tmp_path / "mine") in message
    assert "given explicitly" in message
    assert "set $HANDWRITING_DATA_DIR" not in message
    with pytest.raises(DownloadError) as info:  # the default folder: the variable is the way
        MNIST(None, download=False).load()
    assert "set $HANDWRITING_DATA_DIR" in str(info.value)


def test_info_fails_for_a_model_that_cannot_be_loaded(tmp_path: Path, capsys) -> None:
    import torch

    make_run_dir(tmp_path / "run", 0.9)
    main(["promote", str(tmp_path / "run"), "--to", str(tmp_path / "promoted")])
    model_file = tmp_path / "promoted" / "model.ckpt"
    checkpoint = torch.load(model_file, weights_only=True)
    name = next(k for k, v in checkpoint["state_dict"].items() if v.ndim == 2)
    checkpoint["state_dict"][name] = torch.zeros(3, 3)  # metadata intact, weights unusable
    torch.save(checkpoint, model_file)
    capsys.readouterr()
    assert main(["info", "--model", str(tmp_path / "promoted")]) == 2
    captured = capsys.readouterr()
    assert "cannot be loaded" in captured.err and "does not match" in captured.err
    assert captured.out == ""
    assert main(["info", "--model", str(model_file)]) == 2
    model_file.write_bytes(b"not a checkpoint")
    assert main(["info", "--model", str(tmp_path / "promoted")]) == 2
    assert "cannot be loaded" in capsys.readouterr().err
