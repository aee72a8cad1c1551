"""benchmarks/real_drawings.py on a small synthetic UNIPEN file (8 writers: 2 held out for
test, 2 for validation) with a tiny model: one row per model, numbers in range, a Tesseract
row whether or not Tesseract can run. No /work/shared data, no network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks import common, real_drawings
from handwriting import tesseract_binary
from handwriting.data.pendigits import TRAIN_FILE
from tests.browser_helpers import load_mnist_sample, train_tiny_model, write_promoted_model
from tests.helpers import make_run_dir
from tests.test_real_drawings import unipen_text


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("real_drawings")
    (root / TRAIN_FILE).write_text(unipen_text(samples=1))
    images, labels = load_mnist_sample()
    promoted = root / "promoted"
    write_promoted_model(promoted, train_tiny_model(images, labels, n=3000))
    run = make_run_dir(root / "run", val_acc=0.5)
    return {"root": root, "promoted": promoted, "run": run}


def run_benchmark(setup: dict[str, Path], *extra: str) -> str:
    out = setup["root"] / "REAL.md"
    assert real_drawings.main([
        "--model", f"default={setup['promoted']}", "--model", f"app={setup['run']}",
        "--model", f"file={setup['promoted'] / 'model.ckpt'}",
        "--unipen-file", str(setup["root"] / TRAIN_FILE), "--val-writers", "2",
        "--test-writers", "2", "--out", str(out), *extra]) == 0
    return out.read_text()


def rows(text: str) -> dict[str, list[str]]:
    """The main table's rows by model name (first markdown table of the report)."""
    table = text[re.search(r"^\| model +\| checkpoint", text, re.M).start():].split("\n\n", 1)[0]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    return {row[0]: row for row in cells}


def test_one_row_per_model_with_numbers_in_range_and_tesseract(setup):
    if not tesseract_binary.tesseract_available():
        pytest.skip("tesseract is not installed")
    text = run_benchmark(setup, "--tesseract", "6")
    table = rows(text)
    assert list(table)[:3] == ["default", "app", "file"]
    tesseract = [name for name in table if name.startswith("Tesseract")]
    assert len(table) == 4 and tesseract
    for name in ("default", "app", "file"):
        row = table[name]
        assert row[2] == "20"  # 2 test writers x 10 digits
        for cell in row[3:9]:
            assert 0.0 <= float(cell) <= 100.0
    assert table["default"][3:7] == table["file"][3:7]  # same weights, same drawings
    assert float(table["default"][3]) > 10.0  # a real reader, not chance
    assert "overall ≥ 98.5%" in table["app"][-1] and "worst writer ≥ 95.0%" in table["app"][-1]
    assert re.search(r"overall ≥ 90\.0%: (met|NOT met)", table["default"][-1])
    assert table["file"][-1] == "—"
    assert table[tesseract[0]][2] == "6" and 0.0 <= float(table[tesseract[0]][3]) <= 100.0
    assert "UNIPEN file of your own" in text and "8-bit images, read here as floats): yes" in text
    assert "python -m benchmarks.real_drawings --model default=" in text
    assert "**Per class" in text and "**Per test writer" in text


def test_missing_tesseract_is_a_row_not_a_crash(setup, monkeypatch):
    monkeypatch.setattr(tesseract_binary, "tesseract_version", lambda: None)
    table = rows(run_benchmark(setup, "--tesseract", "3"))
    assert table["Tesseract"][1].startswith("not run")


def test_bad_model_path_exits_with_a_message(setup, capsys):
    argv = ["--model", f"x={setup['root'] / 'nope'}", "--unipen-file", str(setup["root"] / TRAIN_FILE)]
    assert common.run_main(real_drawings.main, argv) == 2
    assert "no checkpoint" in capsys.readouterr().err
