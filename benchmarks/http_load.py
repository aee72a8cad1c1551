"""How fast the HTTP API answers: start `handwriting serve` (the real CLI, its own process,
loopback only), send real single-digit uploads from keep-alive clients, and report
requests per second and p50/p95/p99 latency per concurrency level; writes HTTP_LOAD.md.

Bounded: a fixed number of requests per level and a wall-clock cap, all to 127.0.0.1;
the server is stopped at the end whatever happens. The clients run on the same cores as
the server, so on a 2-core machine the numbers include the load generator's own cost.

Latency does not depend on the weights, only on the architecture, so without ``--model``
(and with no promoted model) an untrained reference MLP (784-128-128-10) is served and the
report says so.

    python -m benchmarks.http_load        # 1000 requests per upload size (28, 280 px) and clients (1, 4)
    python -m benchmarks.http_load --model models/promoted
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.common import (
    NOISE_NOTE,
    ROOT,
    BenchmarkError,
    cli,
    machine_info,
    percentiles,
    run_main,
    table,
    write_json,
)
from handwriting.data.embedded import EmbeddedMNIST
from handwriting.model import MLPClassifier
from handwriting.promotion import default_promoted_dir

TARGET_P50_MS = 5.0
WARMUP = 50
# Per upload size (28: an MNIST-sized digit; 280: the app's canvas) and number of clients:
# requests, capped at MAX_SECONDS; the server runs THREADS torch thread(s).
SIZES, CONCURRENCY, REQUESTS, MAX_SECONDS, THREADS = (28, 280), (1, 4), 1000, 60.0, 1
HEADERS = ["upload px", "clients", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms",
           "server CPU ms/req"]


def _cpu(level: dict[str, Any]) -> str:
    value = level.get("server_cpu_ms")
    return "n/a" if value is None else f"{value:.2f}"


def digit_uploads(n: int, size: int) -> list[bytes]:
    """``n`` real MNIST digits as a drawing or a photo arrives: ``size`` px square PNG,
    dark ink on white."""
    data = EmbeddedMNIST().load().train
    out = []
    for image in data.images[-n:]:
        picture = Image.fromarray(255 - image.astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def model_file(model: str | None, workdir: Path) -> tuple[Path, str]:
    """(checkpoint, description): --model, else the promoted model, else an untrained MLP."""
    if model is not None:
        path = Path(model) / "model.ckpt" if Path(model).is_dir() else Path(model)
        if not path.is_file():
            raise BenchmarkError(f"no model file at {path}")
        return path, str(path)
    promoted = default_promoted_dir() / "model.ckpt"
    if promoted.is_file():
        return promoted, f"{promoted} (promoted)"
    torch.manual_seed(0)
    reference = MLPClassifier()
    path = workdir / "model.ckpt"
    torch.save({"state_dict": reference.state_dict(), "hyper_parameters": dict(reference.hparams)}, path)
    return path, "untrained reference MLP 784-128-128-10 (no --model, nothing promoted)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: Path, port: int, threads: int) -> subprocess.Popen[str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "handwriting.cli", "serve", "--model", str(model), "--port",
         str(port), "--threads", str(threads)],
        cwd=ROOT, env=os.environ | {"PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchmarkError(f"handwriting serve exited:\n{server.stdout.read() if server.stdout else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise BenchmarkError("handwriting serve did not answer /health within 120 s")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client(port: int, uploads: list[bytes], count: int, offset: int, deadline: float,
           latencies: list[float], errors: list[str]) -> None:
    """One keep-alive connection sending ``count`` uploads back to back."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for i in range(count):
            if time.monotonic() > deadline:
                break
            body = uploads[(offset + i) % len(uploads)]
            started = time.perf_counter()
            connection.request("POST", "/predict", body, {"Content-Type": "image/png"})
            response = connection.getresponse()
            payload = response.read()
            latencies.append(time.perf_counter() - started)
            if response.status != 200:
                errors.append(f"{response.status}: {payload[:200]!r}")
    finally:
        connection.close()


def load_level(port: int, uploads: list[bytes], requests: int, concurrency: int,
               max_seconds: float, server_pid: int) -> dict[str, Any]:
    cpu_before = cpu_seconds(server_pid)
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + max_seconds
    per_client = [requests // concurrency + (1 if i < requests % concurrency else 0)
                  for i in range(concurrency)]
    threads = [threading.Thread(target=client, args=(port, uploads, n, i * 997, deadline,
                                                     latencies, errors))
               for i, n in enumerate(per_client)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu_after = cpu_seconds(server_pid)
    if not latencies:
        raise BenchmarkError("no request finished")
    ms = percentiles([s * 1000 for s in latencies])
    return {"concurrency": concurrency, "requests": len(latencies), "errors": len(errors),
            "first_error": errors[0] if errors else None, "seconds": elapsed,
            "rps": len(latencies) / elapsed, "p50_ms": ms["p50"], "p95_ms": ms["p95"],
            "p99_ms": ms["p99"], "capped": len(latencies) < requests,
            # Work per request whatever else runs on the machine: waiting for a core under
            # load inflates latency, not this.
            "server_cpu_ms": (cpu_after - cpu_before) * 1000 / len(latencies)
            if cpu_before is not None and cpu_after is not None else None}


def stage_times(model: Path, uploads: list[bytes], n: int = 200) -> dict[str, float]:
    """Median ms of each step of a /predict in this process (no HTTP): where the server's
    time per request goes."""
    from handwriting.http_api import prediction_json
    from handwriting.inference import Predictor
    from handwriting.preprocessing import prepare_image
    from handwriting.uploads import check_upload

    predictor = Predictor.from_checkpoint(model)
    samples: dict[str, list[float]] = {"check_upload (decode)": [], "prepare_image": [],
                                       "predict": [], "JSON": []}
    for i in range(n):
        t0 = time.perf_counter()
        image = check_upload("digit.png", uploads[i % len(uploads)])
        t1 = time.perf_counter()
        image28 = prepare_image(image)
        t2 = time.perf_counter()
        prediction = predictor.predict(image28)
        t3 = time.perf_counter()
        prediction_json(prediction)
        t4 = time.perf_counter()
        for key, seconds in zip(samples, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            samples[key].append(seconds * 1000)
    return {key: float(np.median(values)) for key, values in samples.items()}


def rows(levels: list[dict[str, Any]]) -> list[list[Any]]:
    return [[f"{r['size']}x{r['size']}", r["concurrency"], r["requests"], r["errors"],
             f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{r['p99_ms']:.2f}",
             _cpu(r)] for r in levels]


def write_report(path: Path, info: dict[str, Any], model: str, args: argparse.Namespace,
                 levels: list[dict[str, Any]], stages: dict[int, dict[str, float]]) -> None:
    singles = [r for r in levels if r["concurrency"] == 1] or levels[:1]
    verdicts = "; ".join(
        f"{r['size']}x{r['size']} upload: p50 {r['p50_ms']:.2f} ms, "
        f"**{'met' if r['p50_ms'] <= TARGET_P50_MS else 'NOT met'}**" for r in singles)
    steps = list(next(iter(stages.values()))) if stages else []
    stage_table = table(["upload px", *steps], [[f"{size}x{size}", *(f"{ms:.2f}" for ms in row.values())]
                                                for size, row in stages.items()])
    text = f"""# HTTP API load test

Generated by `{' '.join(['python -m benchmarks.http_load', *args.argv])}`; do not edit by hand.

`handwriting serve` (uvicorn + Starlette, one process, {args.threads} torch thread) on
127.0.0.1; clients on keep-alive connections POST one real MNIST digit per request as a
PNG (dark ink on white; 28x28 as MNIST digits come, 280x280 as the app's canvas draws) to
`/predict`: upload checks, decoding, preprocessing (crop, scale, centre of mass), the MLP
and the JSON answer are all inside the timing.

- model: {model}
- machine: {info['cpu']}, {info['cores']} usable cores, load average {info['load_average']},
  {info['date']}; the load generator shares these cores with the server.

{table(HEADERS, rows(levels))}

"server CPU ms/req" is the server process's CPU time divided by the requests it answered:
the work per request, which a busy machine does not inflate the way it inflates latency
(waiting for a core). On an idle machine, latency with one client is about that plus the
client's own share.

Where the time goes: median ms per step of `/predict`, in one process without HTTP (the
rest of the server's CPU time is uvicorn, Starlette and the socket):

{stage_table}

Target: p50 <= {TARGET_P50_MS:g} ms per single-digit request with one client: {verdicts}.

{NOISE_NOTE}
"""
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = cli(__doc__, threads=False)
    parser.add_argument("--model", default=None, help="model.ckpt or a promoted dir")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "HTTP_LOAD.md",
                        help="Markdown report ('-': none)")
    parser.add_argument("--quick", action="store_true", help="100 requests per level (smoke test)")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    args.requests, args.threads = (100 if args.quick else REQUESTS), THREADS
    info = machine_info()
    with tempfile.TemporaryDirectory() as workdir:
        model, description = model_file(args.model, Path(workdir))
        port = free_port()
        server = start_server(model, port, args.threads)
        try:
            levels, stages = [], {}
            torch.set_num_threads(args.threads)
            for size in SIZES:
                uploads = digit_uploads(200, size)
                stages[size] = stage_times(model, uploads)
                client(port, uploads, WARMUP, 0, time.monotonic() + 60, [], [])
                for c in CONCURRENCY:
                    level = load_level(port, uploads, args.requests, c, MAX_SECONDS, server.pid)
                    levels.append({"size": size, **level})
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"model: {description}")
    print(table(HEADERS, rows(levels)))
    for r in levels:
        if r["errors"]:
            print(f"warning: {r['errors']} failed requests ({r['size']} px, {r['concurrency']} clients), first: "
                  f"{r['first_error']}", file=sys.stderr)
    if str(args.out) != "-":
        write_report(args.out, info, description, args, levels, stages)
        print(f"wrote {args.out}")
    write_json(args.json_out, {"machine": info, "model": description, "levels": levels,
                               "stages_ms": stages, "target_p50_ms": TARGET_P50_MS})
    return 1 if any(r["errors"] for r in levels) else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
