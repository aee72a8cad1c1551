"""Run the benchmarks (all, or the steps named) and render benchmarks/RESULTS.md from their
JSON (RESULTS.md is generated: edit the scripts, never the file).

Each step is one script run in its own process, writing ``benchmarks/results/STEP.json``;
RESULTS.md is rendered from every JSON there, each section with the date it was measured.
Rerunning what is stale is naming those steps: the others keep their JSON.

    python -m benchmarks.run_all --mnist-dir /path/to/mnist       # every step, ~15 min
    python -m benchmarks.run_all multidigit_embedded multidigit_mnist --mnist-dir /path/to/mnist
    python -m benchmarks.run_all --render                         # only rewrite RESULTS.md
    python -m benchmarks.run_all --quick                          # smoke run in outputs/bench/quick

Without ``--mnist-dir`` (or a filled MNIST cache) the steps that need the official MNIST
files are left out. The Tesseract and multi-digit steps read the reference MLP that
``tesseract_embedded`` trains (deterministically) into outputs/bench/mlp_embedded.ckpt.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    MNIST_FILES,
    NOISE_NOTE,
    ROOT,
    BenchmarkError,
    check_mnist_dir,
    machine_line,
    run_main,
    table,
)

RESULTS_DIR = ROOT / "benchmarks" / "results"
QUICK_DIR = ROOT / "outputs" / "bench" / "quick"
MODEL = "mlp_embedded.ckpt"  # trained by tesseract_embedded, read by the steps after it
MNIST = "$MNIST_DIR"         # stands for --mnist-dir in the commands shown


def model_path(quick: bool) -> str:
    """Where tesseract_embedded saves the MLP the later steps read (relative to the root)."""
    return f"outputs/bench/{'quick/' if quick else ''}{MODEL}"


def plan(quick: bool, mnist: bool = True, tesseract_limit: int = 2000
         ) -> dict[str, tuple[str, str, list[str]]]:
    """Step name -> (title, script module, arguments), in running order. Without MNIST,
    training speed uses the packaged 8k split and scaling synthetic images."""
    model = model_path(quick)
    data = ["--data", "mnist", "--mnist-dir", MNIST]
    few = ["--quick"] if quick else []
    limit = ["--limit", str(tesseract_limit)] if tesseract_limit else []
    return {
        "train_speed": ("Training speed: Lightning vs plain PyTorch (torch's default threads)",
                        "train_speed", [*(data if mnist else []), *few]),
        "train_speed_1thread": ("Training speed: Lightning vs plain PyTorch (1 torch thread)",
                                "train_speed", [*(data if mnist else []), "--threads", "1", *few]),
        "inference": ("Inference latency and throughput", "inference_latency", few),
        "scaling": ("Scaling with data size and hidden width", "scaling",
                    [*(["--mnist-dir", MNIST] if mnist else []), "--threads", "1", *few]),
        "tesseract_embedded": ("Tesseract vs MLP: embedded data's test split", "tesseract_baseline",
                               ["--train-mlp", "--save-checkpoint", model, "--threads", "1", *few]),
        "tesseract_mnist": ("Tesseract vs MLP: official MNIST test set", "tesseract_baseline",
                            [*data, "--checkpoint", model, *limit, "--threads", "1", *few]),
        "multidigit_embedded": ("Whole numbers, MLP vs Tesseract: embedded test digits",
                                "multidigit", ["--n", "6" if quick else "300", "--checkpoint",
                                               model, "--threads", "1"]),
        "multidigit_mnist": ("Whole numbers, MLP vs Tesseract: official MNIST test digits",
                             "multidigit", [*data, "--n", "6" if quick else "1000",
                                            "--checkpoint", model, "--threads", "1"]),
    }


def command(module: str, args: list[str]) -> str:
    return " ".join(["python -m", f"benchmarks.{module}", *args])


def run_step(name: str, module: str, args: list[str], mnist_dir: Path | None, out: Path) -> bool:
    """One script in a fresh process (own torch state, own memory), its output streamed."""
    json_path = out / f"{name}.json"
    json_path.unlink(missing_ok=True)  # a failed rerun must not leave the old numbers behind
    argv = [str(mnist_dir) if a == MNIST else a for a in args]
    print(f"\n=== {name}\n$ {command(module, args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *argv,
                           "--json-out", str(json_path)], cwd=ROOT, check=False)
    if done.returncode != 0:
        print(f"!!! {name} exited with status {done.returncode}", file=sys.stderr)
    return done.returncode == 0


def read_mnist(payload: dict[str, Any]) -> bool:
    """Whether a step read the official MNIST files (training speed and scaling need not)."""
    config = payload.get("config", {})
    return config.get("data") == "mnist" or config.get("synthetic") is False


def render(out: Path, quick: bool, where: Path) -> str:
    """RESULTS.md (to be written in folder ``where``) from the JSON files in ``out``:
    headlines first, then one section a step."""
    headlines, sections = [], []
    for name in plan(quick):
        path = out / f"{name}.json"
        if not path.is_file():
            continue
        payload: dict[str, Any] = json.loads(path.read_text())
        limit = payload["config"].get("n", 0) if payload["config"].get("limited") else 0
        title, module, args = plan(quick, read_mnist(payload), limit)[name]
        script = importlib.import_module(f"benchmarks.{module}")
        headlines.append([title, script.headline(payload)])
        body = (script.markdown(payload, where) if module == "scaling"
                else script.markdown(payload))
        sections += [f"## {title}", machine_line(payload["machine"]), body,
                     f"Reproduce: `{command(module, args)}`"
                     + (f" (`{MNIST}`: a folder with the four official MNIST .gz files)"
                        if MNIST in args else "")]
    return "\n\n".join([
        "# Benchmark results",
        "<!-- GENERATED by `python -m benchmarks.run_all` from benchmarks/results/*.json: do not "
        "edit, rerun the steps instead. -->",
        "How to rerun: [README.md](README.md). Each section says when and on what it was "
        f"measured.\n\n> {NOISE_NOTE}",
        "## Headline numbers", table(["step", "result"], headlines) if headlines else "(none)",
        *sections]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("steps", nargs="*", metavar="STEP", help="steps to run (default: all)")
    p.add_argument("--mnist-dir", type=Path, default=None,
                   help="folder with the four official MNIST .gz files (default: the training "
                   "cache if filled, else the MNIST steps are left out)")
    p.add_argument("--tesseract-mnist-limit", type=int, default=2000,
                   help="official test images for Tesseract (0 = all 10,000; ~50-100 ms each)")
    p.add_argument("--render", action="store_true", help="run nothing, only rewrite RESULTS.md")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes, results in outputs/bench/quick (never benchmarks/)")
    args = p.parse_args(argv)
    out = QUICK_DIR if args.quick else RESULTS_DIR
    mnist_dir = check_mnist_dir(args.mnist_dir) if args.mnist_dir else None
    if mnist_dir is None:  # the cache `python train.py data=mnist` fills, when complete
        from handwriting.data.download import default_data_dir

        cache = default_data_dir("mnist")
        mnist_dir = cache if all((cache / name).is_file() for name in MNIST_FILES) else None
    steps = plan(args.quick, mnist_dir is not None, args.tesseract_mnist_limit)
    unknown = sorted(set(args.steps) - set(steps))
    if unknown:
        raise BenchmarkError(f"unknown step(s) {unknown}; choose from {', '.join(steps)}")
    failed = []
    if not args.render:
        chosen = [name for name in steps if not args.steps or name in args.steps]  # plan order
        model = model_path(args.quick)
        readers = [n for n in chosen if n != "tesseract_embedded"
                   and any(model in a for a in steps[n][2])]
        if readers and "tesseract_embedded" not in chosen and not (ROOT / model).is_file():
            raise BenchmarkError(f"{', '.join(readers)} read {model}, which is missing: run the "
                                 "tesseract_embedded step first (it trains it)")
        started = time.perf_counter()
        for name in chosen:
            _, module, step_args = steps[name]
            if MNIST in step_args and mnist_dir is None:
                print(f"\n=== {name}: skipped, needs --mnist-dir", flush=True)
            elif not run_step(name, module, step_args, mnist_dir, out):
                failed.append(name)
        print(f"\n{(time.perf_counter() - started) / 60:.1f} min of benchmarks")
    results = out / "RESULTS.md" if args.quick else ROOT / "benchmarks" / "RESULTS.md"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(render(out, args.quick, results.parent))
    print(f"Wrote {results}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
