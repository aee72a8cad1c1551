"""Smoke tests of the benchmark scripts: each runs on tiny sizes (``--quick``) and must
print its table, write JSON with the expected keys and only finite numbers, and fail
with status 2 and a clear message on bad input. No timing is asserted: speed depends on
the (shared) machine, not on the code under test."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks import (
    canvas_robustness,
    inference_latency,
    multidigit,
    run_all,
    scaling,
    tesseract_baseline,
    train_speed,
)
from benchmarks.common import PeakMemory, percentiles, run_main, summarize, table, write_json
from handwriting.inference import Predictor
from handwriting.ocr import tesseract_available
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
    """Every script's --quick JSON, produced once for the module (real runs, tiny sizes)."""
    tmp = tmp_path_factory.mktemp("bench")
    out = {
        "train_speed": run_script(train_speed, ["--quick", "--train-size", "256"], tmp / "ts.json"),
        "inference": run_script(inference_latency, ["--quick", "--calls", "5"], tmp / "il.json"),
        "scaling": run_script(scaling, ["--quick", "--plot", str(tmp / "scaling.png")], tmp / "sc.json"),
    }
    checkpoint = tmp / "tiny.ckpt"
    save_checkpoint(checkpoint, hidden_sizes=(16,))
    if tesseract_available():
        out["tesseract"] = run_script(
            tesseract_baseline, ["--quick", "--limit", "4", "--checkpoint", str(checkpoint)],
            tmp / "tb.json",
        )
    no_tess = [] if tesseract_available() else ["--no-tesseract"]
    out["multidigit"] = run_script(
        multidigit, ["--n", "3", "--checkpoint", str(checkpoint), "--threads", "1", *no_tess],
        tmp / "md.json",
    )
    # 20 digits leave a stroke-width bucket empty: its accuracy must come out as null.
    out["canvas"] = run_script(
        canvas_robustness, ["--model", f"tiny={checkpoint}", "--n", "20", "--threads", "1"],
        tmp / "cr.json",
    )
    out["_tmp"] = {"dir": str(tmp)}
    return out


def test_train_speed_reports_all_variants_and_ratio(payloads: dict[str, Any], capsys) -> None:
    p = payloads["train_speed"]
    assert set(p["results"]) == {"plain", "lightning", "lightning_minimal"}
    for variant in p["results"].values():
        assert variant["n"] == 1 and variant["median"] > 0 and variant["samples_per_s_median"] > 0
    assert p["config"]["train_size"] == 256 and p["config"]["steps_per_epoch"] == 2
    assert p["ratio_median"] == pytest.approx(
        p["results"]["lightning"]["median"] / p["results"]["plain"]["median"]
    )
    assert {"ratio_min", "overhead_ms_per_step", "within_target_median", "note"} <= set(p)


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


def test_scaling_reports_each_point_and_saves_plot(payloads: dict[str, Any]) -> None:
    p = payloads["scaling"]
    assert [q["train_size"] for q in p["by_data_size"]] == [256, 512]
    assert [q["hidden_sizes"] for q in p["by_hidden_size"]] == [[8, 8], [16, 16]]
    assert p["by_hidden_size"][0]["parameters"] == 784 * 8 + 8 + 8 * 8 + 8 + 8 * 10 + 10
    assert p["config"]["synthetic"] is True
    plot = Path(p["plot"])
    assert plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.parent == Path(payloads["_tmp"]["dir"])  # never the committed benchmarks/scaling.png


def test_tesseract_baseline_compares_both_readers(payloads: dict[str, Any]) -> None:
    if "tesseract" not in payloads:
        pytest.skip("tesseract is not installed")
    p = payloads["tesseract"]
    assert p["config"]["n"] == 4 and p["config"]["test_size_total"] == 1000
    for reader in ("mlp", "tesseract"):
        result = p[reader]
        assert result["n"] == 4 and 0 <= result["accuracy"] <= 1
        assert set(result["per_class"]) == {str(d) for d in range(10)}
        assert sum(c["n"] for c in result["per_class"].values()) == 4
    assert p["mlp"]["rejection_rate"] == 0.0
    assert sum(p["agreement"].values()) == 4
    # A random checkpoint records no training data: the script must say it cannot rule out overlap.
    assert p["config"]["leakage_warning"]


def test_run_all_renders_every_section(payloads: dict[str, Any], tmp_path: Path) -> None:
    steps = [
        run_all.Step("train_speed", "train_speed.py", ["--quick"], "Training speed",
                     payload=payloads["train_speed"], seconds=1.0),
        run_all.Step("inference", "inference_latency.py", [], "Inference", payload=payloads["inference"]),
        run_all.Step("scaling", "scaling.py", ["--mnist-dir", "$MNIST_DIR"], "Scaling",
                     payload=payloads["scaling"], mnist=True),
        run_all.Step("tesseract_mnist", "tesseract_baseline.py", [], "Tesseract MNIST",
                     error="exited with status 2"),
    ]
    if "tesseract" in payloads:
        steps.append(run_all.Step("tesseract_embedded", "tesseract_baseline.py", [], "Tesseract",
                                  payload=payloads["tesseract"]))
    meta = {"command": "python benchmarks/run_all.py --quick", "total_seconds": 12.0,
            "load_average_start": [1.0, 1.0, 1.0]}
    text = run_all.render_results(steps, payloads["train_speed"]["machine"], meta, tmp_path / "R.md")
    assert "GENERATED by `python benchmarks/run_all.py --quick`" in text
    assert payloads["train_speed"]["machine"]["cpu"] in text
    assert f"{payloads['train_speed']['ratio_median']:.2f}x median" in text
    p50 = payloads["inference"]["runs"][0]["latency_ms"]["predict_canvas"]["p50"]
    assert f"p50 {p50:.2f} ms" in text
    assert "Not measured: exited with status 2." in text
    assert "`python benchmarks/scaling.py --mnist-dir $MNIST_DIR`" in text
    assert "![epoch time and peak memory" in text
    if "tesseract" in payloads:
        assert f"MLP {100 * payloads['tesseract']['mlp']['accuracy']:.1f}% vs Tesseract" in text
    raw = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert set(json.loads(raw)) == {s.name for s in steps if s.payload is not None}


def test_run_all_renders_multidigit_and_canvas_headlines(payloads: dict[str, Any],
                                                          tmp_path: Path) -> None:
    md, cr = payloads["multidigit"], payloads["canvas"]
    steps = [
        run_all.Step("multidigit_embedded", "multidigit.py", ["--n", "3"], "Whole numbers",
                     payload=md),
        run_all.Step("canvas_embedded", "canvas_robustness.py", ["--n", "20"], "Canvas",
                     payload=cr),
    ]
    meta = {"command": "python benchmarks/run_all.py --quick", "total_seconds": 1.0,
            "load_average_start": None}
    text = run_all.render_results(steps, md["machine"], meta, tmp_path / "R.md")
    headline = text.split("## Headline numbers", 1)[1].split("\n## ", 1)[0]
    mlp = md["results"][run_all.MLP_READER]["all"]
    assert f"MLP {100 * mlp['whole_accuracy']:.1f}% / {100 * mlp['char_accuracy']:.1f}%" in headline
    assert ("vs Tesseract" in headline) == tesseract_available()
    assert "touching:" in headline and "separated:" in headline
    tiny = cr["results"]["tiny"]
    assert f"tiny: {100 * tiny['drawn']['mean']:.1f}% drawn vs {100 * tiny['plain']['mean']:.1f}% plain" \
        in headline
    assert "(3 numbers)" in headline and "(20 digits)" in headline
    assert f"overlapping boxes ({md['layouts']['overlapping boxes']})" in text
    assert "n/a (plain n/a)" in text  # the empty stroke-width bucket


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
    import numpy as np

    write_json(tmp_path / "x.json", {"a": float("nan"), "b": [np.float32("inf"), 1.5],
                                     "c": np.array([np.nan, 2.0])})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [None, 1.5],
                                                             "c": [None, 2.0]}


def test_results_raw_json_is_compact_and_free_of_local_folders(
    payloads: dict[str, Any], tmp_path: Path
) -> None:
    value = {"a": [1, 2.5, -3e-05, None], "b": {"c": ["x", "y"]}, "d": []}
    text = run_all.compact_json(value)
    assert json.loads(text) == value and '"a": [1, 2.5, -3e-05, null]' in text
    payload = {**payloads["canvas"], "command": "x --mnist-dir /data/my mnist --n 5"}
    step = run_all.Step("canvas_embedded", "canvas_robustness.py", [], "Canvas", payload=payload)
    meta = {"command": "c", "total_seconds": 1.0, "mnist_dir": "/data/my mnist"}
    text = run_all.render_results([step], payload["machine"], meta, tmp_path / "R.md")
    assert "/data/my mnist" not in text and "--mnist-dir $MNIST_DIR --n 5" in text


def test_run_all_plan_uses_mnist_only_when_given(tmp_path: Path) -> None:
    args = run_all.parser().parse_args(["--quick"])
    args.plot, args.mnist_dir = tmp_path / "s.png", None
    names = [s.name for s in run_all.plan(args, tmp_path)]
    assert "tesseract_mnist" not in names and "scaling" in names
    args.mnist_dir = tmp_path
    args.tesseract_mnist_limit = 0
    mnist_step = next(s for s in run_all.plan(args, tmp_path) if s.name == "tesseract_mnist")
    assert "--limit" not in mnist_step.args and "$MNIST_DIR" in mnist_step.args
    assert str(tmp_path) in mnist_step.command(tmp_path)
    # the checkpoint trained by the embedded step shows up as a bare file name
    assert "--checkpoint mlp_embedded.ckpt" in mnist_step.display(tmp_path)
    steps = {s.name: s for s in run_all.plan(args, tmp_path)}
    names = list(steps)
    # every reader of the checkpoint runs after the step that trains it
    for name in ("tesseract_mnist", "multidigit_embedded", "multidigit_mnist", "canvas_embedded",
                 "canvas_mnist"):
        assert names.index(name) > names.index("tesseract_embedded")
    assert steps["multidigit_embedded"].args[:2] == ["--n", "6"]  # --quick -> tiny --n
    assert "--quick" not in steps["canvas_mnist"].args
    assert "--model mlp=mlp_embedded.ckpt" in steps["canvas_mnist"].display(tmp_path)
    full = run_all.parser().parse_args([])
    full.plot, full.mnist_dir = tmp_path / "s.png", tmp_path
    steps = {s.name: s for s in run_all.plan(full, tmp_path)}
    assert steps["multidigit_embedded"].args[:2] == ["--n", "300"]
    assert "1000" in steps["multidigit_mnist"].args
    assert "--n" not in steps["canvas_embedded"].args  # the whole test split


def earlier_run(work: Path, step: run_all.Step, payload: dict[str, Any], seed: int) -> None:
    """A finished run_all work folder holding ``step``'s result and its checkpoint."""
    save_checkpoint(work / run_all.MODEL_FILE, seed=seed)
    (work / f"{step.name}.json").write_text(json.dumps(payload))
    step.returncode, step.seconds = 0, 42.0
    run_all.save_run(work, [step], payload["machine"], {"command": "x", "total_seconds": 1.0})


def test_run_all_reuses_a_step_only_when_it_is_honest(payloads: dict[str, Any], tmp_path: Path) -> None:
    payload = payloads["canvas"]
    old_work, new_work = tmp_path / "old", tmp_path / "new"

    def step(work: Path, n: str = "20") -> run_all.Step:
        return run_all.Step("canvas_embedded", "canvas_robustness.py",
                            ["--model", f"mlp={work / run_all.MODEL_FILE}", "--n", n], "Canvas")

    earlier_run(old_work, step(old_work), payload, seed=0)
    save_checkpoint(new_work / run_all.MODEL_FILE, seed=0)  # same weights, other folder
    fresh = step(new_work)
    assert run_all.reuse(fresh, old_work, new_work) is None
    assert fresh.payload == payload and fresh.seconds == 42.0
    assert (new_work / "canvas_embedded.json").is_file()  # so --render-only finds it later
    text = run_all.render_results([fresh], payload["machine"], {"command": "x", "total_seconds": 1.0},
                                  tmp_path / "R.md", new_work)
    assert f"Reused from an earlier run ({payload['machine']['date']})" in text
    assert "Reproduce (42.00 s in the earlier run)" in text

    assert "other arguments" in run_all.reuse(step(new_work, n="30"), old_work, new_work)
    save_checkpoint(new_work / run_all.MODEL_FILE, seed=1)  # retrained differently
    assert "other weights" in run_all.reuse(step(new_work), old_work, new_work)
    assert "did not finish" in run_all.reuse(
        run_all.Step("scaling", "scaling.py", [], "Scaling"), old_work, new_work)
    assert run_main(run_all.main, ["--reuse", "scaling"]) == 2  # needs --reuse-from


def test_reusing_a_reused_result_strips_every_folder_it_came_through(
    payloads: dict[str, Any], tmp_path: Path
) -> None:
    first, second, third = tmp_path / "first", tmp_path / "second", tmp_path / "third"

    def step(work: Path) -> run_all.Step:
        return run_all.Step("canvas_embedded", "canvas_robustness.py",
                            ["--model", f"mlp={work / run_all.MODEL_FILE}"], "Canvas")

    # The payload names the checkpoint where it was first measured, as scripts do.
    payload = {**payloads["canvas"], "command": f"x --model mlp={first / run_all.MODEL_FILE}"}
    earlier_run(first, step(first), payload, seed=0)
    middle = step(second)
    save_checkpoint(second / run_all.MODEL_FILE, seed=0)
    assert run_all.reuse(middle, first, second) is None
    run_all.save_run(second, [middle], payload["machine"], {"command": "x", "total_seconds": 1.0})
    last = step(third)
    save_checkpoint(third / run_all.MODEL_FILE, seed=0)
    assert run_all.reuse(last, second, third) is None
    assert last.extra["reused"]["through"] == [str(first)]
    text = run_all.render_results([last], payload["machine"], {"command": "x", "total_seconds": 1.0},
                                  tmp_path / "R.md", third)
    assert str(tmp_path) not in text and f"mlp={run_all.MODEL_FILE}" in text


def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, capsys) -> None:
    assert run_main(train_speed.main, ["--data", "mnist"]) == 2
    assert "--mnist-dir" in capsys.readouterr().err
    assert run_main(scaling.main, ["--quick", "--mnist-dir", str(tmp_path)]) == 2
    assert "lacks train-images-idx3-ubyte.gz" in capsys.readouterr().err
    assert run_main(inference_latency.main, ["--checkpoint", str(tmp_path / "none.ckpt")]) == 2
    assert "No model file" in capsys.readouterr().err
    assert run_main(run_all.main, ["--only", "nonsense"]) == 2
    assert "nonsense" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        train_speed.main(["--repeats", "0"])
    assert exit_info.value.code == 2


def test_tesseract_training_path_saves_a_loadable_model(tmp_path: Path) -> None:
    if not tesseract_available():
        pytest.skip("tesseract is not installed")
    saved = tmp_path / "mlp.ckpt"
    payload = run_script(
        tesseract_baseline,
        ["--quick", "--limit", "2", "--train-mlp", "--save-checkpoint", str(saved)],
        tmp_path / "tb.json",
    )
    assert "trained here" in payload["config"]["model"]
    assert payload["config"]["leakage_warning"] is None  # trained on this very split's train part
    predictor = Predictor.from_checkpoint(saved)
    assert predictor.metadata["data_fingerprint"] == payload["config"]["data_fingerprint"]


def test_helpers_summaries_and_memory_probe() -> None:
    assert summarize([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "mean": 2.0, "n": 3}
    assert percentiles(list(range(101))) == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    text = table(["a", "b"], [[1234, 0.5]], markdown=True)
    assert text.splitlines()[2] == "| 1,234 | 0.5 |"
    with PeakMemory() as mem:
        # 64 MiB, beyond glibc's largest mmap threshold: always fresh pages, always counted.
        block = torch.ones(64 * 2**20 // 4)
        del block
    if mem.reset_ok:
        assert mem.delta_mib is not None and mem.delta_mib >= 60


def test_scripts_run_as_files() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--help"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "RESULTS.md" in done.stdout


def test_run_all_render_only_rebuilds_results_from_a_work_dir(
    payloads: dict[str, Any], tmp_path: Path
) -> None:
    step = run_all.Step("inference", "inference_latency.py", ["--quick"], "Inference", returncode=0,
                        seconds=2.0)
    (tmp_path / "inference.json").write_text(json.dumps(payloads["inference"]))
    meta = {"command": "python benchmarks/run_all.py --quick", "total_seconds": 3.0,
            "load_average_start": None}
    run_all.save_run(tmp_path, [step], payloads["inference"]["machine"], meta)
    results = tmp_path / "out" / "RESULTS.md"
    code = run_main(run_all.main, ["--render-only", "--work-dir", str(tmp_path), "--results", str(results)])
    assert code == 0
    text = results.read_text()
    assert "## Inference" in text and "Reproduce (2.00 s here)" in text
    assert run_main(run_all.main, ["--render-only", "--work-dir", str(tmp_path / "out")]) == 2


def test_run_all_render_only_keeps_a_quick_run_out_of_results_md(
    payloads: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = tmp_path / "bench"  # stands in for benchmarks/, should the guard ever break
    monkeypatch.setattr(run_all, "BENCH_DIR", bench)
    step = run_all.Step("inference", "inference_latency.py", ["--quick"], "Inference", returncode=0)
    (tmp_path / "inference.json").write_text(json.dumps(payloads["inference"]))
    run_all.save_run(tmp_path, [step], payloads["inference"]["machine"],
                     {"command": "python benchmarks/run_all.py --quick", "total_seconds": 1.0})
    assert run_main(run_all.main, ["--render-only", "--work-dir", str(tmp_path)]) == 0
    assert (tmp_path / "RESULTS.md").is_file() and not (bench / "RESULTS.md").exists()


def test_shown_command_hides_local_folders(tmp_path: Path) -> None:
    shown = run_all.shown_command(
        ["--mnist-dir", str(tmp_path), "--work-dir", "/tmp/x", "--tesseract-mnist-limit", "0"], tmp_path
    )
    assert shown == "python benchmarks/run_all.py --mnist-dir $MNIST_DIR --tesseract-mnist-limit 0"
    shown = run_all.shown_command(["--reuse-from", "/tmp/old", "--reuse", "tesseract_mnist"], None)
    assert shown == ("python benchmarks/run_all.py --reuse-from $EARLIER_WORK_DIR "
                     "--reuse tesseract_mnist")
