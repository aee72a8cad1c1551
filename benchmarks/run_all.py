"""Run every benchmark, each in its own process, and regenerate benchmarks/RESULTS.md
from their JSON output (RESULTS.md is generated: edit this script, never the file).

Default sizes finish in roughly 5-10 minutes on 2 cores. With ``--mnist-dir`` (or a
filled MNIST cache) training speed and scaling use the official 60k images and Tesseract
is also compared on the official 10k test set (first 2,000 images unless
``--tesseract-mnist-limit 0``).

    python benchmarks/run_all.py --mnist-dir /path/to/mnist
    python benchmarks/run_all.py --quick --results /tmp/RESULTS.md     # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (  # noqa: E402
    BENCH_DIR,
    NOISE_NOTE,
    ROOT,
    BenchmarkError,
    add_threads,
    check_mnist_dir,
    default_mnist_dir,
    fmt,
    load_average,
    machine_info,
    run_main,
    table,
)

STEP_NAMES = ("train_speed", "train_speed_1thread", "inference", "scaling", "tesseract_embedded",
              "tesseract_mnist")


@dataclass
class Step:
    """One script run: what to run, and (after running) how it went."""

    name: str
    script: str
    args: list[str]
    title: str
    mnist: bool = False  # the args name $MNIST_DIR
    returncode: int | None = None
    seconds: float | None = None
    payload: dict[str, Any] | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def command(self, mnist_dir: Path | None = None) -> list[str]:
        args = [str(mnist_dir) if a == "$MNIST_DIR" and mnist_dir else a for a in self.args]
        return [sys.executable, str(BENCH_DIR / self.script), *args]

    def display(self, work: Path | None = None) -> str:
        """How a reader reruns this step, from the project root: paths inside the project
        relative to it, files in run_all's temporary work folder as bare names."""
        shown = []
        for arg in self.args:
            path = Path(arg)
            if arg == "$MNIST_DIR":
                shown.append(arg)
                continue
            if path.is_absolute() and work is not None and path.parent == work.resolve():
                arg = path.name
            elif path.is_absolute() and path.is_relative_to(ROOT):
                arg = str(path.relative_to(ROOT))
            shown.append(shlex.quote(arg))
        return " ".join(["python", f"benchmarks/{self.script}", *shown])


def plan(args: argparse.Namespace, work: Path) -> list[Step]:
    """The steps and their arguments for this run."""
    quick = ["--quick"] if args.quick else []
    mnist = args.mnist_dir is not None
    data = ["--data", "mnist", "--mnist-dir", "$MNIST_DIR"] if mnist else []
    threads = ["--threads", str(args.threads)] if args.threads else []
    model = work.resolve() / "mlp_embedded.ckpt"
    steps = [
        Step("train_speed", "train_speed.py", [*data, *threads, *quick],
             "Training speed: Lightning vs plain PyTorch (torch's default threads)", mnist),
        Step("train_speed_1thread", "train_speed.py", [*data, "--threads", "1", *quick],
             "Training speed: Lightning vs plain PyTorch (1 torch thread)", mnist),
        Step("inference", "inference_latency.py", [*quick], "Inference latency and throughput"),
        Step("scaling", "scaling.py",
             [*(["--mnist-dir", "$MNIST_DIR"] if mnist else []), "--threads", "1",
              "--plot", str(args.plot), *quick],
             "Scaling with data size and hidden width", mnist),
        Step("tesseract_embedded", "tesseract_baseline.py",
             ["--train-mlp", "--save-checkpoint", str(model), "--threads", "1", *quick],
             "Tesseract vs MLP: embedded data's test split"),
    ]
    if mnist:
        limit = [] if args.tesseract_mnist_limit == 0 else ["--limit", str(args.tesseract_mnist_limit)]
        steps.append(Step(
            "tesseract_mnist", "tesseract_baseline.py",
            ["--data", "mnist", "--mnist-dir", "$MNIST_DIR", "--checkpoint", str(model), *limit,
             "--threads", "1", *quick],
            "Tesseract vs MLP: official MNIST test set", True))
    if args.only:
        steps = [s for s in steps if s.name in args.only]
    return steps


def execute(step: Step, mnist_dir: Path | None, work: Path) -> None:
    """Run one step in a fresh process (own torch state, own memory), streaming its output."""
    json_path = work / f"{step.name}.json"
    command = [*step.command(mnist_dir), "--json-out", str(json_path)]
    print(f"\n=== {step.title}\n$ {step.display(work)}", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    step.seconds = time.perf_counter() - start
    step.returncode = done.returncode
    if done.returncode == 0 and json_path.is_file():
        step.payload = json.loads(json_path.read_text())
    else:
        step.error = f"exited with status {done.returncode} (see its output above)"
        print(f"!!! {step.name} failed: {step.error}", file=sys.stderr)


# --------------------------------------------------------------------------- rendering


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def ms(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_train_speed(p: dict[str, Any]) -> list[str]:
    cfg, res = p["config"], p["results"]
    labels = {"plain": "plain PyTorch loop", "lightning": "Lightning `fit`, MLPClassifier",
              "lightning_minimal": "Lightning `fit`, minimal LightningModule"}
    rows = [[labels[k], f"{v['median']:.3f}", f"{v['min']:.3f}", f"{v['max']:.3f}",
             fmt(v["samples_per_s_median"]), f"{v['median'] / res['plain']['median']:.2f}"]
            for k, v in res.items()]
    return [
        f"One epoch of {cfg['train_size']:,} {cfg['data']} images, batch {cfg['batch_size']} "
        f"({cfg['steps_per_epoch']} steps), MLP 784-{'-'.join(map(str, cfg['hidden_sizes']))}-10, "
        f"Adam; {cfg['repeats']} interleaved repeats after {cfg['warmup']} warm-up; "
        f"**torch threads: {cfg['torch_threads']}**.",
        "",
        table(["variant", "median s", "min s", "max s", "samples/s (median)", "x plain (median)"],
              rows, markdown=True),
        "",
        f"**Lightning/plain: {p['ratio_median']:.2f}x median, {p['ratio_min']:.2f}x best-of** "
        f"(target <= {p['target_ratio']}x: "
        f"{'met' if p['within_target_median'] else 'not met'} by the median, "
        f"{'met' if p['within_target_min'] else 'not met'} best-of); "
        f"{p['overhead_ms_per_step']:.2f} ms extra per step (median). "
        f"The minimal LightningModule (same network and optimizer, no torchmetrics, no `self.log`) "
        f"takes {p['ratio_minimal_median']:.2f}x plain; MLPClassifier differs from it only by its "
        "per-step torchmetrics updates and `self.log` calls.",
    ]


def render_inference(p: dict[str, Any]) -> list[str]:
    cfg = p["config"]
    out = [
        f"Model: {cfg['model']}. Input: one {cfg['canvas_shape'][0]}x{cfg['canvas_shape'][1]} "
        f"RGBA canvas, {cfg['canvas']} (true label {cfg['digit_label']}, read as "
        f"{p['prediction']['label']}). {cfg['calls']} timed calls after {cfg['warmup']} warm-up "
        f"per row, in-process; throughput runs batches for >= {cfg['min_time_s']} s, "
        f"{cfg['repeats']} repeats.",
    ]
    names = {"predict_canvas": "`predict_canvas` (preprocessing + model)",
             "preprocessing": "`prepare_canvas` only", "model": "`predict` on the 28x28 only"}
    for run in p["runs"]:
        lat = run["latency_ms"]
        rows = [[names[k], ms(v["p50"], 3), ms(v["p95"], 3), ms(v["p99"], 3), ms(v["mean"], 3)]
                for k, v in lat.items()]
        tput = [[t["batch"], fmt(t["images_per_s_median"]), fmt(t["images_per_s_best"]),
                 ms(t["ms_per_batch_median"], 3)] for t in run["throughput"]]
        out += [
            "",
            f"**torch threads: {run['torch_threads']}** -- p50 "
            f"{lat['predict_canvas']['p50']:.2f} ms, p95 {lat['predict_canvas']['p95']:.2f} ms "
            f"(target p50 < {p['target_p50_ms']} ms: "
            f"{'met' if run['within_target'] else 'not met'})",
            "",
            table(["latency (ms)", "p50", "p95", "p99", "mean"], rows, markdown=True),
            "",
            table(["batch of prepared 28x28", "images/s (median)", "images/s (best)",
                   "ms per batch"], tput, markdown=True),
        ]
    return out


def render_scaling(p: dict[str, Any], results_path: Path) -> list[str]:
    cfg = p["config"]

    def rows(points: list[dict[str, Any]]) -> list[list[Any]]:
        return [[f"{q['train_size']:,}", "x".join(map(str, q["hidden_sizes"])), f"{q['parameters']:,}",
                 f"{q['epoch_s_median']:.3f}", f"{q['epoch_s_min']:.3f}", fmt(q["samples_per_s"]),
                 ms(q["peak_rss_delta_mib"], 1), ms(q["data_tensor_mib"], 1)] for q in points]

    headers = ["images", "hidden", "parameters", "epoch s (median)", "min", "samples/s",
               "peak RSS rise MiB", "float32 data MiB"]
    out = [
        f"Plain PyTorch loop, one epoch, batch {cfg['batch_size']}, Adam; {cfg['data']}; "
        f"{cfg['repeats']} repeats after {cfg['warmup']} warm-up; **torch threads: "
        f"{cfg['torch_threads']}** (one thread keeps the curve readable on a busy machine). "
        "Peak RSS rise = resident-memory high-water mark over the block minus the RSS at its "
        "start (kernel counter reset per point).",
        "",
        "By data size (building the data module from uint8 images + model + epochs):",
        "",
        table(headers, rows(p["by_data_size"]), markdown=True),
        "",
        "By hidden width h of 784-h-h-10 (data already in memory: model, Adam state, "
        "activations):",
        "",
        table(headers, rows(p["by_hidden_size"]), markdown=True),
    ]
    if p.get("plot"):
        rel = os.path.relpath(Path(p["plot"]).resolve(), results_path.resolve().parent)
        out += ["", f"![epoch time and peak memory vs data size and hidden width]({rel})"]
    return out


def render_tesseract(p: dict[str, Any]) -> list[str]:
    cfg, mlp, tess, agree = p["config"], p["mlp"], p["tesseract"], p["agreement"]
    setup = cfg["tesseract_setup"]
    rows = [
        ["accuracy (rejections count as errors)", pct(mlp["accuracy"]), pct(tess["accuracy"])],
        ["correct", f"{mlp['correct']:,} / {mlp['n']:,}", f"{tess['correct']:,} / {tess['n']:,}"],
        ["rejection rate (no answer)", pct(mlp["rejection_rate"]), pct(tess["rejection_rate"])],
        ["accuracy when answering", pct(mlp["accuracy_answered"]), pct(tess["accuracy_answered"])],
        ["ms per image, single call (p50)", ms(mlp["latency_ms"]["p50"], 3),
         ms(tess["latency_ms"]["p50"], 1)],
        ["ms per image, throughput", f"{mlp['ms_per_image_batch']:.4f} (one batch)",
         f"{tess['ms_per_image_wall']:.1f} ({cfg['workers']} workers)"],
    ]
    per_class = [[name, mlp["per_class"][name]["n"], pct(mlp["per_class"][name]["accuracy"]),
                  pct(tess["per_class"][name]["accuracy"])] for name in mlp["per_class"]]
    out = [
        f"Test images: {cfg['subset']} of the {cfg['test_size_total']:,} in the {cfg['test_set']}.",
        f"MLP: {cfg['model']}.",
        f"Tesseract {cfg['tesseract_version']}: `--psm {setup['psm']}`, whitelist "
        f"`{setup['whitelist']}`, glyph redrawn dark-on-white at {setup['render']['glyph_height']} "
        f"px with a {setup['render']['pad']} px margin and blur {setup['render']['blur']} "
        f"(handwriting.ocr defaults). MLP timed with {cfg['torch_threads']} torch thread(s); "
        "Tesseract runs one subprocess per image.",
        "",
        table(["", "MLP", "Tesseract"], rows, markdown=True),
        "",
        f"Both right {agree['both_correct']:,}, only the MLP {agree['only_mlp']:,}, only "
        f"Tesseract {agree['only_tesseract']:,}, neither {agree['neither']:,}.",
    ]
    if cfg.get("leakage_warning"):
        out += ["", f"**Warning:** {cfg['leakage_warning']}."]
    out += [
        "",
        "<details><summary>Per-class accuracy</summary>",
        "",
        table(["class", "images", "MLP", "Tesseract"], per_class, markdown=True),
        "",
        "</details>",
    ]
    return out


def headline(steps: dict[str, Step]) -> list[str]:
    """The few numbers a reader wants first."""
    rows = []
    for key in ("tesseract_embedded", "tesseract_mnist"):
        step = steps.get(key)
        if step and step.payload:
            cfg, mlp, tess = step.payload["config"], step.payload["mlp"], step.payload["tesseract"]
            where = "embedded test split" if cfg["data"] == "embedded" else "official MNIST test"
            rows.append([f"Accuracy, {where} ({cfg['n']:,} images)",
                         f"MLP {pct(mlp['accuracy'])} vs Tesseract {pct(tess['accuracy'])} "
                         f"(Tesseract rejects {pct(tess['rejection_rate'])}; "
                         f"{pct(tess['accuracy_answered'])} right when it answers)"])
    for key in ("train_speed", "train_speed_1thread"):
        step = steps.get(key)
        if step and step.payload:
            p = step.payload
            rows.append([f"Lightning/plain epoch time, {p['config']['train_size']:,} images, "
                         f"{p['config']['torch_threads']} thread(s)",
                         f"{p['ratio_median']:.2f}x median, {p['ratio_min']:.2f}x best-of "
                         f"(minimal module {p['ratio_minimal_median']:.2f}x; target 1.3x)"])
    step = steps.get("inference")
    if step and step.payload:
        for run in step.payload["runs"]:
            lat = run["latency_ms"]["predict_canvas"]
            rows.append([f"Canvas -> prediction latency, {run['torch_threads']} thread(s)",
                         f"p50 {lat['p50']:.2f} ms, p95 {lat['p95']:.2f} ms, p99 {lat['p99']:.2f} ms "
                         f"(target p50 < 5 ms)"])
    step = steps.get("scaling")
    if step and step.payload:
        big = step.payload["by_data_size"][-1]
        rows.append([f"Plain epoch, {big['train_size']:,} images, 784-128-128-10, 1 thread",
                     f"{big['epoch_s_median']:.2f} s, peak RSS rise {ms(big['peak_rss_delta_mib'], 0)} "
                     f"MiB (float32 data alone {big['data_tensor_mib']:.0f} MiB)"])
    return [table(["measure", "result"], rows, markdown=True)] if rows else ["(no results)"]


def render_results(steps: list[Step], info: dict[str, Any], meta: dict[str, Any],
                   results_path: Path, work: Path | None = None) -> str:
    """RESULTS.md from the steps' payloads (pure function: tests feed it real payloads)."""
    by_name = {s.name: s for s in steps}
    load = meta.get("load_average_start")
    lines = [
        "# Benchmark results",
        "",
        f"<!-- GENERATED by `{meta['command']}` -- do not edit; rerun the script instead. -->",
        "",
        f"Generated by `{meta['command']}` on {info['date']} in {meta['total_seconds'] / 60:.1f} "
        "min. How to rerun: [README.md](README.md).",
        "",
        "## Machine",
        "",
        table(["", ""], [
            ["CPU", info["cpu"]],
            ["usable cores", str(info["cores"])],
            ["memory", f"{info['memory_gib']} GiB" if info.get("memory_gib") else "n/a"],
            ["torch", f"{info['torch']} (default {info['torch_threads']} threads)"],
            ["Lightning", info["lightning"]],
            ["Python / numpy", f"{info['python']} / {info['numpy']}"],
            ["platform", info["platform"]],
            ["load average at start / end (1, 5, 15 min)",
             f"{' '.join(f'{v:.2f}' for v in load) if load else 'n/a'} / "
             f"{' '.join(f'{v:.2f}' for v in info['load_average']) if info.get('load_average') else 'n/a'}"],
        ], markdown=True),
        "",
        f"> {NOISE_NOTE}",
        "",
        "## Headline numbers",
        "",
        *headline(by_name),
    ]
    renderers = {
        "train_speed": render_train_speed, "train_speed_1thread": render_train_speed,
        "inference": render_inference,
        "scaling": lambda p: render_scaling(p, results_path),
        "tesseract_embedded": render_tesseract, "tesseract_mnist": render_tesseract,
    }
    for step in steps:
        lines += ["", f"## {step.title}", ""]
        if step.payload is None:
            lines.append(f"Not measured: {step.error or 'skipped'}.")
        else:
            lines += renderers[step.name](step.payload)
        lines += ["", f"Reproduce ({fmt(step.seconds or 0.0, 3)} s here): `{step.display(work)}`"
                  + (" (`$MNIST_DIR`: a folder with the four official MNIST .gz files)"
                     if step.mnist else "")]
    raw = {s.name: s.payload for s in steps if s.payload is not None}
    lines += [
        "",
        "## Raw results",
        "",
        "<details><summary>Every number above, as the scripts wrote it (JSON)</summary>",
        "",
        "```json",
        json.dumps(raw, indent=1),
        "```",
        "",
        "</details>",
        "",
    ]
    text = "\n".join(lines)
    # No local folders in a committed file: run_all's work files by name, project files
    # relative to the project root.
    if work is not None:
        text = text.replace(f"{Path(work).resolve()}/", "")
    return text.replace(f"{ROOT}/", "")


# --------------------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist-dir", type=Path, default=None,
                   help="folder with the four official MNIST .gz files (default: the training "
                   "cache if filled, else the MNIST parts are left out)")
    p.add_argument("--tesseract-mnist-limit", type=int, default=2000,
                   help="official test images for Tesseract (0 = all 10,000; ~50-100 ms each)")
    p.add_argument("--results", type=Path, default=None,
                   help="where to write the markdown (default: benchmarks/RESULTS.md; with "
                   "--quick, RESULTS.md in the work folder so the real one is never overwritten)")
    p.add_argument("--plot", type=Path, default=None,
                   help="scaling plot path (default: next to the results file, scaling.png)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="keep the per-script JSON and the trained checkpoint here (default: temp)")
    p.add_argument("--only", type=lambda s: [x for x in s.split(",") if x], default=None,
                   help=f"comma-separated subset of: {', '.join(STEP_NAMES)}")
    add_threads(p)
    p.add_argument("--quick", action="store_true", help="every script with --quick (smoke test)")
    p.add_argument("--render-only", action="store_true",
                   help="rewrite the results file from an earlier run's --work-dir, running nothing")
    return p


RUN_FILE = "run_all.json"


def shown_command(argv: list[str], mnist_dir: Path | None) -> str:
    """The command line for RESULTS.md: MNIST folder as $MNIST_DIR, no local work folder."""
    shown, skip = ["python benchmarks/run_all.py"], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--work-dir":
            skip = True
        elif not arg.startswith("--work-dir="):
            is_mnist = mnist_dir is not None and Path(arg).expanduser().resolve() == mnist_dir.resolve()
            shown.append("$MNIST_DIR" if is_mnist else shlex.quote(arg))
    return " ".join(shown)


def save_run(work: Path, steps: list[Step], info: dict[str, Any], meta: dict[str, Any]) -> None:
    """What --render-only needs besides the scripts' own JSON files."""
    record = {"meta": meta, "machine": info, "steps": [
        {"name": s.name, "script": s.script, "args": s.args, "title": s.title, "mnist": s.mnist,
         "returncode": s.returncode, "seconds": s.seconds, "error": s.error} for s in steps
    ]}
    (work / RUN_FILE).write_text(json.dumps(record, indent=1))


def load_run(work: Path) -> tuple[list[Step], dict[str, Any], dict[str, Any]]:
    path = work / RUN_FILE
    if not path.is_file():
        raise BenchmarkError(f"--render-only: {path} is missing; give the --work-dir of a finished run")
    record = json.loads(path.read_text())
    steps = []
    for item in record["steps"]:
        step = Step(**item)
        payload_path = work / f"{step.name}.json"
        if step.returncode == 0 and payload_path.is_file():
            step.payload = json.loads(payload_path.read_text())
        steps.append(step)
    return steps, record["machine"], record["meta"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.only and set(args.only) - set(STEP_NAMES):
        raise BenchmarkError(f"--only: unknown {sorted(set(args.only) - set(STEP_NAMES))}; "
                             f"choose from {', '.join(STEP_NAMES)}")
    if args.tesseract_mnist_limit < 0:
        raise BenchmarkError("--tesseract-mnist-limit must be >= 0 (0 = all)")
    if args.render_only and args.work_dir is None:
        raise BenchmarkError("--render-only needs the --work-dir of an earlier run")
    args.mnist_dir = check_mnist_dir(args.mnist_dir) if args.mnist_dir else default_mnist_dir()
    temp = None
    if args.work_dir is None:
        temp = tempfile.TemporaryDirectory(prefix="handwriting-bench-")
        args.work_dir = Path(temp.name)
    args.work_dir = args.work_dir.resolve()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if args.results is None:
        args.results = args.work_dir / "RESULTS.md" if args.quick else BENCH_DIR / "RESULTS.md"
    if args.plot is None:
        args.plot = args.results.parent / "scaling.png"
    args.plot = args.plot.resolve()

    if args.render_only:
        steps, info, meta = load_run(args.work_dir)
    else:
        started, load_start = time.perf_counter(), load_average()
        steps = plan(args, args.work_dir)
        for step in steps:
            execute(step, args.mnist_dir, args.work_dir)
        meta = {"command": shown_command(argv, args.mnist_dir),
                "total_seconds": time.perf_counter() - started, "load_average_start": load_start}
        info = machine_info()
        save_run(args.work_dir, steps, info, meta)
    text = render_results(steps, info, meta, args.results, args.work_dir)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    print(f"\nWrote {args.results} ({meta['total_seconds'] / 60:.1f} min of benchmarks)")
    if temp is not None:
        temp.cleanup()
    failed = [s.name for s in steps if s.payload is None]
    if failed:
        print(f"Failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
