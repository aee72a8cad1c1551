"""Run every benchmark, each in its own process, and regenerate benchmarks/RESULTS.md
from their JSON output (RESULTS.md is generated: edit this script, never the file).

Default sizes finish in roughly 10-15 minutes on 2 cores. With ``--mnist-dir`` (or a
filled MNIST cache) training speed and scaling use the official 60k images, and Tesseract,
the multi-digit comparison and the canvas-drawing proxy also run on the official 10k test
set (Tesseract on the first 2,000 images unless ``--tesseract-mnist-limit 0``).

    python benchmarks/run_all.py --mnist-dir /path/to/mnist
    python benchmarks/run_all.py --quick --results /tmp/RESULTS.md     # smoke run

``--reuse-from DIR --reuse STEP[,STEP]`` takes those steps' results from an earlier run's
``--work-dir`` instead of running them again, but only when that is honest: the step
finished there with the same arguments, the MLP checkpoint it read has the same weights
as this run's, and the Tesseract version is the same; otherwise the step runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
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
    positive_int,
    run_main,
    table,
)

STEP_NAMES = ("train_speed", "train_speed_1thread", "inference", "scaling", "tesseract_embedded",
              "tesseract_mnist", "multidigit_embedded", "multidigit_mnist", "canvas_embedded",
              "canvas_mnist")
MODEL_FILE = "mlp_embedded.ckpt"  # trained by tesseract_embedded, read by the later steps


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
            if arg == "$MNIST_DIR":
                shown.append(arg)
                continue
            # NAME=PATH arguments (canvas_robustness --model) show their path the same way
            name, sep, value = arg.rpartition("=") if "=/" in arg else ("", "", arg)
            path = Path(value)
            if path.is_absolute() and work is not None and path.parent == work.resolve():
                value = path.name
            elif path.is_absolute() and path.is_relative_to(ROOT):
                value = str(path.relative_to(ROOT))
            shown.append(shlex.quote(f"{name}{sep}{value}"))
        return " ".join(["python", f"benchmarks/{self.script}", *shown])


def plan(args: argparse.Namespace, work: Path) -> list[Step]:
    """The steps and their arguments for this run."""
    quick = ["--quick"] if args.quick else []
    mnist = args.mnist_dir is not None
    data = ["--data", "mnist", "--mnist-dir", "$MNIST_DIR"] if mnist else []
    threads = ["--threads", str(args.threads)] if args.threads else []
    model = work.resolve() / MODEL_FILE
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
    # multidigit.py and canvas_robustness.py have no --quick: a small --n does its job.
    digits_n = ["--n", "6" if args.quick else str(args.multidigit_n)]
    steps.append(Step(
        "multidigit_embedded", "multidigit.py",
        [*digits_n, "--checkpoint", str(model), "--threads", "1"],
        "Whole numbers, MLP vs Tesseract: embedded test digits"))
    if mnist:
        steps.append(Step(
            "multidigit_mnist", "multidigit.py",
            ["--data", "mnist", "--mnist-dir", "$MNIST_DIR",
             "--n", "6" if args.quick else str(args.multidigit_mnist_n),
             "--checkpoint", str(model), "--threads", "1"],
            "Whole numbers, MLP vs Tesseract: official MNIST test digits", True))
    canvas_n = ["--n", "20"] if args.quick else []
    steps.append(Step(
        "canvas_embedded", "canvas_robustness.py",
        ["--model", f"mlp={model}", *canvas_n, "--threads", "1"],
        "Canvas drawings (proxy) vs plain test digits: embedded test split"))
    if mnist:
        steps.append(Step(
            "canvas_mnist", "canvas_robustness.py",
            ["--data", "mnist", "--mnist-dir", "$MNIST_DIR", "--model", f"mlp={model}", *canvas_n,
             "--threads", "1"],
            "Canvas drawings (proxy) vs plain test digits: official MNIST test set", True))
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


TESSERACT_SCRIPTS = ("tesseract_baseline.py", "multidigit.py")


def same_weights(a: Path, b: Path) -> bool:
    """Whether two Lightning checkpoints hold exactly the same tensors."""
    import torch

    if not (a.is_file() and b.is_file()):
        return False
    first = torch.load(a, map_location="cpu", weights_only=True)["state_dict"]
    second = torch.load(b, map_location="cpu", weights_only=True)["state_dict"]
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def recorded_tesseract(payload: dict[str, Any]) -> str | None:
    """The Tesseract version a payload was measured with, as far as it says."""
    cfg = payload.get("config", {})
    return cfg.get("tesseract_version") or cfg.get("tesseract")


def reuse(step: Step, source: Path, work: Path) -> str | None:
    """Take ``step``'s result from an earlier run's work folder ``source`` when that is
    honest (same arguments, same model weights, same Tesseract); returns None when reused,
    else why not."""
    record_path = source / RUN_FILE
    if not record_path.is_file():
        return f"{record_path} is missing"
    old = next((s for s in json.loads(record_path.read_text())["steps"] if s["name"] == step.name),
               None)
    payload_path = source / f"{step.name}.json"
    if old is None or old["returncode"] != 0 or not payload_path.is_file():
        return f"it did not finish in {source}"
    earlier = Step(old["name"], old["script"], old["args"], old["title"], old["mnist"])
    if earlier.display(source) != step.display(work):
        return f"it ran with other arguments there: {earlier.display(source)}"
    payload = json.loads(payload_path.read_text())
    checks = ["same arguments"]
    if any(arg.endswith(MODEL_FILE) for arg in step.args):
        if not same_weights(source / MODEL_FILE, work / MODEL_FILE):
            return f"its {MODEL_FILE} has other weights than this run's"
        checks.append(f"identical weights in {MODEL_FILE}")
    if step.script in TESSERACT_SCRIPTS:
        from handwriting.ocr import tesseract_version

        version, recorded = tesseract_version(), recorded_tesseract(payload) or ""
        if version is None or not (recorded == version or f"Tesseract {version}," in recorded):
            return f"Tesseract differs: {recorded or 'unknown'} there, {version} here"
        checks.append(f"same Tesseract ({version})")
    shutil.copyfile(payload_path, work / f"{step.name}.json")
    step.payload, step.returncode, step.seconds = payload, 0, old["seconds"]
    # A result reused there may itself come from a run before it: keep every folder it came
    # through, so rendering can strip them all from the committed file.
    origin = old.get("extra", {}).get("reused", {})
    through = [*origin.get("through", []), *([origin["from"]] if origin.get("from") else [])]
    step.extra["reused"] = {"date": payload.get("machine", {}).get("date"), "checks": checks,
                            "from": str(source), "through": through}
    return None


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
        f"takes {p['ratio_minimal_median']:.2f}x plain ({minimal_min_ratio(p):.2f}x best-of): "
        "the framework's own cost. MLPClassifier adds its metric bookkeeping to that "
        "(torchmetrics loss mean and accuracy, see handwriting/model.py).",
        *(["", f"{noise_flag(p)}."] if noise_flag(p) else []),
    ]


NOISY_SPREAD = 2.0  # slowest / fastest repeat of one variant beyond which a row is flagged


def spread(p: dict[str, Any]) -> float:
    """The largest slowest/fastest ratio over the variants' repeats: how disturbed the run was."""
    return max(v["max"] / v["min"] for v in p["results"].values())


def noise_flag(p: dict[str, Any]) -> str:
    if spread(p) <= NOISY_SPREAD:
        return ""
    return (f"**noisy**: one variant's repeats differ up to {spread(p):.0f}x (other processes "
            "held the cores), so these ratios say little; trust best-of and the 1-thread row")


def minimal_min_ratio(p: dict[str, Any]) -> float:
    res = p["results"]
    return res["lightning_minimal"]["min"] / res["plain"]["min"]


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


LAYOUTS = ("separated", "overlapping boxes", "touching")
MLP_READER, TESSERACT_READER = "MLP (segmentation + read_number)", "Tesseract (read_line, psm 7)"


def render_multidigit(p: dict[str, Any]) -> list[str]:
    cfg, results, counts = p["config"], p["results"], p["layouts"]
    rows = [[name, pct(r["all"]["whole_accuracy"]), pct(r["all"]["char_accuracy"]),
             pct(r["all"]["right_length"]), pct(r["all"]["empty"]),
             ms(r["ms_per_image"]["p50"], 1)] for name, r in results.items()]
    by_layout = [[name, *(f"{pct(r[k]['whole_accuracy'])} / {pct(r[k]['char_accuracy'])}"
                          for k in LAYOUTS)] for name, r in results.items()]
    out = [
        f"{cfg['n']:,} numbers of {cfg['digits'][0]}-{cfg['digits'][1]} real digits drawn from "
        f"the {cfg['test_digits']:,} of the {cfg['test_set']}, seed {cfg['seed']}: digit height "
        f"{cfg['digit_height_px'][0]}-{cfg['digit_height_px'][1]} px, gaps of "
        f"{cfg['gap_in_digit_heights'][0]:g} to {cfg['gap_in_digit_heights'][1]:g} digit heights "
        "(negative: neighbours overlap). Whole number = the string read is exactly right; per "
        "character = 1 - edit distance / length; right length = as many characters as digits.",
        f"MLP: {cfg['model']}. Tesseract: {cfg['tesseract']}. MLP timed with 1 torch thread.",
        "",
        table(["reader", "whole number", "per character", "right length", "empty answer",
               "ms/number p50"], rows, markdown=True),
        "",
        "By layout (whole number / per character):",
        "",
        table(["reader", *(f"{k} ({counts[k]:,})" for k in LAYOUTS)], by_layout, markdown=True),
        "",
        "\"MLP on the separate digits\" is the same model on each source digit alone: its gap "
        "to the MLP row is what segmentation costs.",
    ]
    if cfg.get("leakage_warning"):
        out += ["", f"**Warning:** {cfg['leakage_warning']}."]
    return out


def gap_interval(result: dict[str, Any]) -> str:
    """The paired 95% interval of a canvas gap (canvas_robustness.gap_ci95), in points."""
    interval = result.get("gap_ci95")
    return f"{100 * interval[0]:+.1f} to {100 * interval[1]:+.1f}" if interval else "n/a"


def render_canvas(p: dict[str, Any]) -> list[str]:
    cfg, results = p["config"], p["results"]
    target = cfg.get("target_gap", 0.02)

    def acc(value: dict[str, float] | float) -> str:
        return pct(value["mean"] if isinstance(value, dict) else value)

    rows = [[name, acc(r["plain"]), acc(r["plain_app"]), acc(r["drawn"]),
             f"{100 * r['gap']['mean']:+.1f}", gap_interval(r),
             "yes" if r["gap"]["mean"] <= target else "no"]
            for name, r in results.items()]
    out = [
        f"Test digits: {cfg['description']}. Each digit thinned to its skeleton and redrawn as "
        f"round-pen strokes on a {cfg['canvas_size']} px black canvas (pen width spread evenly "
        "over the app's 8-40 px slider, random size and position), then read through the app's "
        "own `prepare_canvas` path; \"plain\" is the usual test accuracy of the same digits, "
        "\"plain via app\" the stored digits through the app's preprocessing without redrawing. "
        "A proxy: nobody has labelled real canvas drawings. Model: this run's "
        f"{MODEL_FILE} (the MLP of the Tesseract comparison).",
        "",
        table(["model", "plain", "plain via app", "drawn", "gap (points)", "gap 95% CI",
               f"gap <= {100 * target:g} points"], rows, markdown=True),
    ]
    for group, title in (("by_pen_width", "Drawn accuracy by canvas pen width (px on 280 px)"),
                         ("by_input_width", "Drawn accuracy by stroke width in the 28x28 input (px)")):
        first = next(iter(results.values())).get(group)
        if not first:
            continue
        header = [f"{bucket} ({first[bucket]['n']:,})" for bucket in first]
        bucket_rows = [[name, *(f"{pct(r[group][b]['drawn'])} (plain {pct(r[group][b]['plain'])})"
                                for b in first)] for name, r in results.items()]
        out += ["", f"{title}, digits per bucket in brackets:", "",
                table(["model", *header], bucket_rows, markdown=True)]
    shared = p.get("shared_drawn_errors")
    if shared:
        out += ["", f"{shared['count']:,} of {shared['of']:,} digits are read right as scans but "
                f"wrong when drawn by all {shared['checkpoints']} checkpoint(s) evaluated."]
    for warning in p.get("warnings") or []:
        out += ["", f"**Warning:** {warning}."]
    return out


def threads_label(threads: int, default: bool) -> str:
    unit = "thread" if threads == 1 else "threads"
    return f"{threads} {unit}, torch's default" if default else f"{threads} {unit}"


def headline(steps: dict[str, Step]) -> list[str]:
    """The few numbers a reader wants first."""
    rows = []
    for key in ("tesseract_embedded", "tesseract_mnist"):
        step = steps.get(key)
        if step and step.payload:
            cfg, mlp, tess = step.payload["config"], step.payload["mlp"], step.payload["tesseract"]
            where = "embedded test split" if cfg["data"] == "embedded" else "official MNIST test"
            reused = step.extra.get("reused")
            rows.append([f"Accuracy, {where} ({cfg['n']:,} images)",
                         f"MLP {pct(mlp['accuracy'])} vs Tesseract {pct(tess['accuracy'])} "
                         f"(Tesseract rejects {pct(tess['rejection_rate'])}; "
                         f"{pct(tess['accuracy_answered'])} right when it answers)"
                         + (f"; reused from the {reused['date']} run" if reused else "")])
    for key in ("multidigit_embedded", "multidigit_mnist"):
        step = steps.get(key)
        if step and step.payload:
            cfg, res = step.payload["config"], step.payload["results"]
            where = "embedded" if cfg["data"] == "embedded" else "official MNIST"
            mlp, tess = res.get(MLP_READER), res.get(TESSERACT_READER)

            def both(layout: str, mlp: Any = mlp, tess: Any = tess) -> str:
                one = f"{pct(mlp[layout]['whole_accuracy'])} / {pct(mlp[layout]['char_accuracy'])}"
                if tess is None:
                    return f"MLP {one}"
                two = f"{pct(tess[layout]['whole_accuracy'])} / {pct(tess[layout]['char_accuracy'])}"
                return f"MLP {one} vs Tesseract {two}"

            if mlp is not None:
                rows.append([f"Whole numbers of {cfg['digits'][0]}-{cfg['digits'][1]} {where} test "
                             f"digits ({cfg['n']:,} numbers), whole number / per character",
                             f"{both('all')}; separated: {both('separated')}; touching: "
                             f"{both('touching')}"])
    for key in ("canvas_embedded", "canvas_mnist"):
        step = steps.get(key)
        if step and step.payload:
            cfg = step.payload["config"]
            where = "embedded test split" if cfg["data"] == "embedded" else "official MNIST test"
            for name, r in step.payload["results"].items():
                rows.append([f"Drawn on the canvas (proxy), {where} ({cfg['n']:,} digits)",
                             f"{name}: {pct(r['drawn']['mean'])} drawn vs {pct(r['plain']['mean'])} "
                             f"plain (gap {100 * r['gap']['mean']:+.1f} points, 95% CI "
                             f"{gap_interval(r)}; target <= "
                             f"{100 * cfg.get('target_gap', 0.02):g})"])
    for key in ("train_speed_1thread", "train_speed"):
        step = steps.get(key)
        if step and step.payload:
            p = step.payload
            label = threads_label(p["config"]["torch_threads"],
                                  key == "train_speed" and "--threads" not in step.args)
            rows.append([f"Lightning/plain epoch time, {p['config']['train_size']:,} images, {label}",
                         f"MLPClassifier {p['ratio_median']:.2f}x median ({p['ratio_min']:.2f}x "
                         f"best-of); minimal LightningModule {p['ratio_minimal_median']:.2f}x median "
                         f"({minimal_min_ratio(p):.2f}x best-of); target {p['target_ratio']}x"
                         + (f"; {noise_flag(p)}" if noise_flag(p) else "")])
    step = steps.get("inference")
    if step and step.payload:
        default = step.payload["config"].get("default_torch_threads")
        for run in sorted(step.payload["runs"], key=lambda r: r["torch_threads"] != 1):
            lat = run["latency_ms"]["predict_canvas"]
            label = threads_label(run["torch_threads"], run["torch_threads"] == default)
            if run["torch_threads"] == 1:
                label += " (the app's setting)"
            rows.append([f"Canvas -> prediction latency, {label}",
                         f"p50 {lat['p50']:.2f} ms, p95 {lat['p95']:.2f} ms, p99 {lat['p99']:.2f} ms "
                         f"(target p50 < {step.payload['target_p50_ms']:g} ms)"])
    step = steps.get("scaling")
    if step and step.payload:
        big = step.payload["by_data_size"][-1]
        rows.append([f"Plain epoch, {big['train_size']:,} images, 784-128-128-10, 1 thread",
                     f"{big['epoch_s_median']:.2f} s, peak RSS rise {ms(big['peak_rss_delta_mib'], 0)} "
                     f"MiB (float32 data alone {big['data_tensor_mib']:.0f} MiB)"])
    return [table(["measure", "result"], rows, markdown=True)] if rows else ["(no results)"]


def compact_json(value: Any) -> str:
    """Indented JSON with every list of plain numbers on one line (long index lists would
    otherwise take a line per number)."""
    text = json.dumps(value, indent=1)
    return re.sub(r"\[\s*((?:-?[\d.eE+-]+|null)(?:,\s*(?:-?[\d.eE+-]+|null))*)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)


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
        "multidigit_embedded": render_multidigit, "multidigit_mnist": render_multidigit,
        "canvas_embedded": render_canvas, "canvas_mnist": render_canvas,
    }
    for step in steps:
        lines += ["", f"## {step.title}", ""]
        reused = step.extra.get("reused")
        if reused:
            lines += [f"**Reused from an earlier run ({reused['date']}), not rerun:** "
                      f"{', '.join(reused['checks'])}. Its timings come from that run's load.", ""]
        if step.payload is None:
            lines.append(f"Not measured: {step.error or 'skipped'}.")
        else:
            lines += renderers[step.name](step.payload)
        where = "in the earlier run" if reused else "here"
        lines += ["", f"Reproduce ({fmt(step.seconds or 0.0, 3)} s {where}): "
                  f"`{step.display(work)}`"
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
        compact_json(raw),
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
    for step in steps:  # the same for the folders reused results come from
        reused = step.extra.get("reused", {})
        for folder in [*reused.get("through", []), *([reused["from"]] if reused.get("from") else [])]:
            text = text.replace(f"{folder}/", "")
    if meta.get("mnist_dir"):  # as in the commands shown: $MNIST_DIR
        text = text.replace(meta["mnist_dir"], "$MNIST_DIR")
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
    p.add_argument("--multidigit-n", type=positive_int, default=300,
                   help="composed numbers from the embedded test digits (multidigit.py)")
    p.add_argument("--multidigit-mnist-n", type=positive_int, default=1000,
                   help="composed numbers from the official MNIST test digits")
    p.add_argument("--reuse-from", type=Path, default=None, metavar="DIR",
                   help="the --work-dir of an earlier run to take --reuse steps from")
    p.add_argument("--reuse", type=lambda s: [x for x in s.split(",") if x], default=[],
                   metavar="STEP[,STEP]",
                   help="steps to take from --reuse-from instead of running them, when the "
                   "arguments, model weights and Tesseract version match (else they run)")
    add_threads(p)
    p.add_argument("--quick", action="store_true",
                   help="every script with --quick or a tiny --n (smoke test)")
    p.add_argument("--render-only", action="store_true",
                   help="rewrite the results file from an earlier run's --work-dir, running nothing")
    return p


RUN_FILE = "run_all.json"


def shown_command(argv: list[str], mnist_dir: Path | None) -> str:
    """The command line for RESULTS.md: MNIST folder as $MNIST_DIR, no local work folder,
    an earlier run's folder as $EARLIER_WORK_DIR."""
    shown, skip = ["python benchmarks/run_all.py"], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--work-dir":
            skip = True
        elif arg == "--reuse-from" or arg.startswith("--reuse-from="):
            shown.append("--reuse-from $EARLIER_WORK_DIR")
            skip = arg == "--reuse-from"
        elif not arg.startswith("--work-dir="):
            is_mnist = mnist_dir is not None and Path(arg).expanduser().resolve() == mnist_dir.resolve()
            shown.append("$MNIST_DIR" if is_mnist else shlex.quote(arg))
    return " ".join(shown)


def save_run(work: Path, steps: list[Step], info: dict[str, Any], meta: dict[str, Any]) -> None:
    """What --render-only needs besides the scripts' own JSON files."""
    record = {"meta": meta, "machine": info, "steps": [
        {"name": s.name, "script": s.script, "args": s.args, "title": s.title, "mnist": s.mnist,
         "returncode": s.returncode, "seconds": s.seconds, "error": s.error, "extra": s.extra}
        for s in steps
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
    if set(args.reuse) - set(STEP_NAMES):
        raise BenchmarkError(f"--reuse: unknown {sorted(set(args.reuse) - set(STEP_NAMES))}; "
                             f"choose from {', '.join(STEP_NAMES)}")
    if args.reuse and args.reuse_from is None:
        raise BenchmarkError("--reuse needs --reuse-from DIR (the --work-dir of an earlier run)")
    if args.reuse_from is not None and not (args.reuse_from / RUN_FILE).is_file():
        raise BenchmarkError(f"--reuse-from: {args.reuse_from / RUN_FILE} is missing; give the "
                             "--work-dir of a finished run_all.py run")
    args.mnist_dir = check_mnist_dir(args.mnist_dir) if args.mnist_dir else default_mnist_dir()
    temp = None
    if args.work_dir is None:
        temp = tempfile.TemporaryDirectory(prefix="handwriting-bench-")
        args.work_dir = Path(temp.name)
    args.work_dir = args.work_dir.resolve()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        loaded = load_run(args.work_dir)
        # a smoke run's numbers must never land in the committed RESULTS.md
        args.quick = args.quick or "--quick" in loaded[2]["command"].split()
    if args.results is None:
        args.results = args.work_dir / "RESULTS.md" if args.quick else BENCH_DIR / "RESULTS.md"
    if args.plot is None:
        args.plot = args.results.parent / "scaling.png"
    args.plot = args.plot.resolve()

    if args.render_only:
        steps, info, meta = loaded
    else:
        started, load_start = time.perf_counter(), load_average()
        steps = plan(args, args.work_dir)
        for step in steps:
            if step.name in args.reuse:
                why_not = reuse(step, args.reuse_from.resolve(), args.work_dir)
                if why_not is None:
                    print(f"\n=== {step.title}\nreused from {args.reuse_from} "
                          f"({', '.join(step.extra['reused']['checks'])})", flush=True)
                    continue
                print(f"\n!!! not reusing {step.name}: {why_not}; running it", file=sys.stderr)
            execute(step, args.mnist_dir, args.work_dir)
        meta = {"command": shown_command(argv, args.mnist_dir),
                "mnist_dir": str(args.mnist_dir) if args.mnist_dir else None,
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
