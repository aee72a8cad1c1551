"""Smoke tests of the benchmark scripts: each runs on tiny sizes (``--quick``) and must write
JSON with the expected keys and only finite numbers, render them as markdown, and fail with
status 2 and a clear message on bad input; run_all renders RESULTS.md from those JSON files.
No timing is asserted: speed depends on the (shared) machine, not on the code under test."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmarks import http_load, inference_latency, run_all, scaling, train_speed
from benchmarks.common import percentiles, run_main, summarize, table, write_json
from benchmarks.scaling import PeakMemory
from tests.helpers import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers(v)]
    return []


def run_script(module: Any, args: list[str], json_path: Path) -> dict[str, Any]:
    threads = torch.get_num_threads()
    try:
        assert run_main(module.main, [*args, "--json-out", str(json_path)]) == 0
    finally:
        torch.set_num_threads(threads)  # scripts may change it; keep the test process as it was
    payload = json.loads(json_path.read_text())
    values = numbers(payload)
    assert values and all(math.isfinite(v) for v in values)
    assert payload["machine"]["cores"] >= 1 and payload["machine"]["torch"] == torch.__version__
    return payload


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every run_all script's --quick JSON, written once for the module into a folder laid
    out as run_all keeps them (real runs, tiny sizes)."""
    tmp = tmp_path_factory.mktemp("bench")
    out = {
        "train_speed": run_script(train_speed, ["--quick", "--train-size", "256"],
                                  tmp / "train_speed.json"),
        "inference": run_script(inference_latency, ["--quick", "--calls", "5"],
                                tmp / "inference.json"),
        "scaling": run_script(scaling, ["--quick", "--plot", str(tmp / "scaling.png")],
                              tmp / "scaling.json"),
    }
    save_checkpoint(tmp / "tiny.ckpt", hidden_sizes=(16,))
    out["http_load"] = run_script(http_load, ["--quick", "--model", str(tmp / "tiny.ckpt")],
                                  tmp / "http_load.json")
    out["_tmp"] = {"dir": str(tmp)}
    return out


def test_train_speed_reports_all_variants_and_ratio(payloads: dict[str, Any]) -> None:
    p = payloads["train_speed"]
    assert set(p["results"]) == {"plain", "lightning", "lightning_minimal"}
    for variant in p["results"].values():
        assert variant["n"] == 1 and variant["median"] > 0 and variant["samples_per_s_median"] > 0
    assert p["config"]["train_size"] == 256 and p["config"]["steps_per_epoch"] == 2
    assert p["ratio_median"] == pytest.approx(
        p["results"]["lightning"]["median"] / p["results"]["plain"]["median"])
    assert {"ratio_min", "overhead_ms_per_step", "within_target_median", "note"} <= set(p)
    assert f"**Lightning/plain: {p['ratio_median']:.2f}x median" in train_speed.markdown(p)


def test_inference_reports_percentiles_per_thread_setting(payloads: dict[str, Any]) -> None:
    p = payloads["inference"]
    assert p["config"]["trained"] is False and "untrained" in p["config"]["model"]
    assert p["config"]["canvas_shape"] == [280, 280, 4]
    assert [r["torch_threads"] for r in p["runs"]] == p["config"]["thread_settings"]
    for run in p["runs"]:
        for part in ("predict_canvas", "preprocessing", "model"):
            lat = run["latency_ms"][part]
            assert 0 < lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert [t["batch"] for t in run["throughput"]] == [1, 8]
        assert all(t["images_per_s_median"] > 0 for t in run["throughput"])
    assert p["prediction"]["label"] in [str(d) for d in range(10)]
    p50 = p["runs"][0]["latency_ms"]["predict_canvas"]["p50"]
    assert f"p50 {p50:.2f} ms" in inference_latency.markdown(p)


def test_scaling_reports_each_point_and_saves_plot(payloads: dict[str, Any]) -> None:
    p = payloads["scaling"]
    assert [q["train_size"] for q in p["by_data_size"]] == [256, 512]
    assert [q["hidden_sizes"] for q in p["by_hidden_size"]] == [[8, 8], [16, 16]]
    assert p["by_hidden_size"][0]["parameters"] == 784 * 8 + 8 + 8 * 8 + 8 + 8 * 10 + 10
    assert p["config"]["synthetic"] is True
    plot = Path(p["plot"])
    assert plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.parent == Path(payloads["_tmp"]["dir"])  # never the committed benchmarks/scaling.png
    assert "(scaling.png)" in scaling.markdown(p, plot.parent)  # linked beside the markdown


def test_http_load_serves_real_uploads_at_each_level(payloads: dict[str, Any]) -> None:
    p = payloads["http_load"]
    assert [(r["size"], r["concurrency"]) for r in p["levels"]] == [(28, 1), (28, 4), (280, 1),
                                                                    (280, 4)]
    for level in p["levels"]:
        assert level["errors"] == 0 and level["requests"] == 100
        assert 0 < level["p50_ms"] <= level["p95_ms"] <= level["p99_ms"]
    assert set(p["stages_ms"]) == {"28", "280"}  # where the time goes, per upload size
    assert all(ms > 0 for row in p["stages_ms"].values() for ms in row.values())
    assert "tiny.ckpt" in p["config"]["model"]
    rows = [line for line in http_load.markdown(p).splitlines() if line.startswith("| 280x280")]
    assert len(rows) == 3  # two load levels and the time per step
    p50 = p["levels"][0]["p50_ms"]
    assert f"28x28 upload, one client: p50 {p50:.2f} ms (target <= 5 ms: " in http_load.headline(p)


def test_run_all_renders_every_kept_result(payloads: dict[str, Any], tmp_path: Path) -> None:
    folder = Path(payloads["_tmp"]["dir"])
    text = run_all.render(folder, quick=True, where=folder)
    assert text.startswith("# Benchmark results") and "GENERATED" in text
    headline = text.split("## Headline numbers", 1)[1].split("\n## ", 1)[0]
    ts = payloads["train_speed"]
    assert f"MLPClassifier {ts['ratio_median']:.2f}x median" in headline
    assert payloads["inference"]["machine"]["date"] in text  # each section says when it ran
    assert "Reproduce: `python -m benchmarks.scaling --threads 1 --quick`" in text  # synthetic
    assert "## Training speed: Lightning vs plain PyTorch (1 torch thread)" not in text  # no JSON


def test_committed_results_md_is_rendered_from_the_committed_json() -> None:
    """RESULTS.md holds nothing but what benchmarks/results/*.json say."""
    rendered = run_all.render(run_all.RESULTS_DIR, quick=False, where=ROOT / "benchmarks")
    assert rendered == (ROOT / "benchmarks" / "RESULTS.md").read_text()


def test_run_all_plan_and_its_guards(capsys) -> None:
    steps = run_all.plan(quick=False, mnist=False)
    assert "--data" not in steps["train_speed"][2]  # the packaged 8k split without MNIST
    assert "--mnist-dir" not in steps["scaling"][2]  # synthetic images without MNIST
    with_mnist = run_all.plan(quick=False, mnist=True)
    assert run_all.MNIST in with_mnist["train_speed"][2] and run_all.MNIST in with_mnist["scaling"][2]
    assert all("--quick" in args for _, _, args in run_all.plan(quick=True).values())
    assert run_main(run_all.main, ["nonsense"]) == 2
    assert "nonsense" in capsys.readouterr().err


def test_a_failed_rerun_leaves_no_stale_result(tmp_path: Path) -> None:
    (tmp_path / "train_speed.json").write_text("{}")
    assert not run_all.run_step("train_speed", "train_speed", ["--data", "mnist", "--quick"],
                                None, tmp_path)
    assert not (tmp_path / "train_speed.json").exists()


def test_quick_render_never_touches_benchmarks(payloads: dict[str, Any], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    quick = tmp_path / "quick"
    shutil.copytree(payloads["_tmp"]["dir"], quick)
    monkeypatch.setattr(run_all, "QUICK_DIR", quick)
    before = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    assert run_main(run_all.main, ["--quick", "--render"]) == 0
    assert "## Inference latency" in (quick / "RESULTS.md").read_text()
    assert (ROOT / "benchmarks" / "RESULTS.md").read_text() == before


def test_quick_scaling_never_replaces_the_committed_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = scaling.DEFAULT_PLOT
    before = committed.read_bytes() if committed.is_file() else None
    monkeypatch.setattr(scaling, "QUICK_PLOT", tmp_path / "quick.png")
    assert run_main(scaling.main, ["--quick", "--threads", "1"]) == 0
    assert (tmp_path / "quick.png").is_file()
    assert (committed.read_bytes() if committed.is_file() else None) == before


def test_json_turns_nan_into_null(tmp_path: Path) -> None:
    write_json(tmp_path / "x.json", {"a": float("nan"), "b": [np.float32("inf"), 1.5],
                                     "c": np.array([np.nan, 2.0])})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [None, 1.5],
                                                             "c": [None, 2.0]}


def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, capsys) -> None:
    assert run_main(train_speed.main, ["--data", "mnist"]) == 2
    assert "--mnist-dir" in capsys.readouterr().err
    assert run_main(scaling.main, ["--quick", "--mnist-dir", str(tmp_path)]) == 2
    assert "lacks train-images-idx3-ubyte.gz" in capsys.readouterr().err
    assert run_main(inference_latency.main, ["--checkpoint", str(tmp_path / "none.ckpt")]) == 2
    assert "No model file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        train_speed.main(["--repeats", "0"])
    assert exit_info.value.code == 2


def test_helpers_summaries_and_memory_probe() -> None:
    assert summarize([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "mean": 2.0, "n": 3}
    assert percentiles(list(range(101))) == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    lines = table(["a", "b"], [[1234, 0.5]]).splitlines()
    assert [c.strip() for c in lines[2].strip("|").split("|")] == ["1,234", "0.5"]
    with PeakMemory() as mem:
        # 64 MiB, beyond glibc's largest mmap threshold: always fresh pages, always counted.
        block = torch.ones(64 * 2**20 // 4)
        del block
    if mem.reset_ok:
        assert mem.delta_mib is not None and mem.delta_mib >= 60


def test_scripts_run_as_modules() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.run_all", "--help"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "RESULTS.md" in done.stdout
