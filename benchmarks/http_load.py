"""Load test of the HTTP API: `handwriting serve` (the real CLI, its own process, 127.0.0.1
only) answering real digits POSTed as PNGs by keep-alive clients. Reports requests/s,
p50/p95/p99 latency and server CPU time per request for each upload size and number of
clients, and where a request's time goes. Target: p50 <= 5 ms with one client. Without
--model (and nothing promoted) an untrained reference MLP is served: latency does not
depend on the weights. A step of run_all (its section of RESULTS.md).

    python -m benchmarks.http_load [--model models/promoted] [--quick]
"""

from __future__ import annotations

import http.client
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks import common
from handwriting.data.embedded import EmbeddedMNIST
from handwriting.http_api import prediction_json
from handwriting.inference import Predictor
from handwriting.model import MLPClassifier
from handwriting.preprocessing import prepare_image
from handwriting.promoted_dir import default_promoted_dir
from handwriting.uploads import check_upload

TARGET_P50_MS, WARMUP = 5.0, 50
# Per upload size (28: an MNIST-sized digit; 280: the app's canvas) and number of clients:
# requests, capped at MAX_SECONDS; the server runs THREADS torch thread(s).
SIZES, CONCURRENCY, REQUESTS, MAX_SECONDS, THREADS = (28, 280), (1, 4), 1000, 60.0, 1
HEADERS = ["upload px", "clients", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms",
           "server CPU ms/req"]


def digit_uploads(n: int, size: int) -> list[bytes]:
    """``n`` real MNIST digits as a drawing or photo arrives: ``size`` px PNGs, dark on white."""
    out = []
    for image in EmbeddedMNIST().load().train.images[-n:]:
        picture = Image.fromarray(255 - image.astype(np.uint8))
        buffer = io.BytesIO()
        picture.resize((size, size), Image.Resampling.BILINEAR).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def model_file(model: str | None, workdir: Path) -> tuple[Path, str]:
    """(checkpoint, description): --model, else the promoted model, else an untrained MLP."""
    if model is not None:
        path = Path(model) / "model.ckpt" if Path(model).is_dir() else Path(model)
        if not path.is_file():
            raise common.BenchmarkError(f"no model file at {path}")
        return path, str(path)
    promoted = default_promoted_dir() / "model.ckpt"
    if promoted.is_file():
        shown = promoted.relative_to(common.ROOT) if promoted.is_relative_to(common.ROOT) else promoted
        return promoted, f"{shown} (promoted)"
    torch.manual_seed(0)
    reference, path = MLPClassifier(), workdir / "model.ckpt"
    torch.save({"state_dict": reference.state_dict(),
                "hyper_parameters": dict(reference.hparams)}, path)
    return path, "untrained reference MLP 784-128-128-10 (no --model, nothing promoted)"


def start_server(model: Path) -> tuple[subprocess.Popen[str], int]:
    """`handwriting serve` on a free loopback port, once it answers /health: (process, port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "handwriting.cli", "serve", "--model", str(model), "--port",
         str(port), "--threads", str(THREADS)],
        cwd=common.ROOT, env=os.environ | {"PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.stdout.read() if server.stdout else ""
            raise common.BenchmarkError(f"handwriting serve exited:\n{output}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                if response.status == 200:
                    return server, port
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise common.BenchmarkError("handwriting serve did not answer /health within 120 s")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_level(port: int, uploads: list[bytes], requests: int, clients: int,
               server_pid: int) -> dict[str, Any]:
    """``requests`` uploads, shared by ``clients`` keep-alive connections that each send back
    to back, until all are answered or MAX_SECONDS have passed."""
    cpu_before, latencies, errors = cpu_seconds(server_pid), [], []
    deadline = time.monotonic() + MAX_SECONDS

    def client(indices: range) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for index in indices:
                if time.monotonic() > deadline:
                    break
                started = time.perf_counter()
                connection.request("POST", "/predict", uploads[index % len(uploads)],
                                   {"Content-Type": "image/png"})
                response = connection.getresponse()
                payload = response.read()
                latencies.append(time.perf_counter() - started)
                if response.status != 200:
                    errors.append(f"{response.status}: {payload[:200]!r}")
        finally:
            connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:  # a failing client raises here
        list(pool.map(client, [range(i, requests, clients) for i in range(clients)]))
    elapsed, cpu_after = time.perf_counter() - started, cpu_seconds(server_pid)
    if not latencies:
        raise common.BenchmarkError("no request finished")
    ms = common.percentiles([s * 1000 for s in latencies])
    return {"concurrency": clients, "requests": len(latencies), "errors": len(errors),
            "first_error": errors[0] if errors else None, "seconds": elapsed,
            "rps": len(latencies) / elapsed, "p50_ms": ms["p50"], "p95_ms": ms["p95"],
            "p99_ms": ms["p99"], "capped": len(latencies) < requests,
            "server_cpu_ms": (cpu_after - cpu_before) * 1000 / len(latencies)
            if cpu_before is not None and cpu_after is not None else None}


def stage_times(model: Path, uploads: list[bytes], n: int = 200) -> dict[str, float]:
    """Median ms of each step of a /predict in this process (no HTTP): where the server's
    time per request goes. Each step runs on all ``n`` inputs, the next on its outputs."""
    predictor = Predictor.from_checkpoint(model)
    steps = {"check_upload (decode)": lambda upload: check_upload("digit.png", upload),
             "prepare_image": prepare_image, "predict": predictor.predict, "JSON": prediction_json}
    values, medians = [uploads[i % len(uploads)] for i in range(n)], {}
    for name, step in steps.items():
        values, ms = common.timed_map(step, values)
        medians[name] = float(np.median(ms))
    return medians


def headline(p: dict[str, Any]) -> str:
    return "; ".join(f"{r['size']}x{r['size']} upload, one client: p50 {r['p50_ms']:.2f} ms "
                     f"(target <= {TARGET_P50_MS:g} ms: "
                     f"{'met' if r['p50_ms'] <= TARGET_P50_MS else 'NOT met'}), {r['rps']:.0f} req/s"
                     for r in p["levels"] if r["concurrency"] == 1)


def markdown(p: dict[str, Any]) -> str:
    levels = common.table(HEADERS, [
        [f"{r['size']}x{r['size']}", r["concurrency"], r["requests"], r["errors"],
         f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{r['p99_ms']:.2f}",
         "n/a" if r["server_cpu_ms"] is None else f"{r['server_cpu_ms']:.2f}"]
        for r in p["levels"]])
    stages = p["stages_ms"]
    stage_table = common.table(["upload px", *next(iter(stages.values()))],
                               [[f"{size}x{size}", *(f"{ms:.2f}" for ms in row.values())]
                                for size, row in stages.items()])
    return "\n\n".join([
        f"`handwriting serve` (uvicorn + Starlette, one process, {THREADS} torch thread) on "
        "127.0.0.1, model: " + p["config"]["model"] + ". Clients on keep-alive connections POST "
        "one real MNIST digit per request as a PNG (dark ink on white; 28x28 as MNIST digits "
        "come, 280x280 as the app's canvas draws) to `/predict`: upload checks, decoding, "
        "preprocessing, the MLP and the JSON answer are all inside the timing. The load "
        "generator shares the cores with the server.",
        levels,
        '"server CPU ms/req" is the server process\'s CPU time divided by the requests it '
        "answered: the work per request, which a busy machine does not inflate the way it "
        "inflates latency (waiting for a core).",
        "Where the time goes: median ms per step of `/predict`, in one process without HTTP "
        "(the rest of the server's CPU time is uvicorn, Starlette and the socket):",
        stage_table])


def main(argv: list[str] | None = None) -> int:
    parser = common.cli(__doc__, threads=False)
    parser.add_argument("--model", default=None, help="model.ckpt or a promoted dir")
    parser.add_argument("--quick", action="store_true", help="100 requests per level (smoke test)")
    args = parser.parse_args(argv)
    requests = 100 if args.quick else REQUESTS
    levels, stages = [], {}
    with tempfile.TemporaryDirectory() as workdir:
        model, description = model_file(args.model, Path(workdir))
        server, port = start_server(model)
        try:
            torch.set_num_threads(THREADS)
            for size in SIZES:
                uploads = digit_uploads(200, size)
                stages[size] = stage_times(model, uploads)
                load_level(port, uploads, WARMUP, 1, server.pid)  # warm-up, not reported
                levels += [{"size": size, **load_level(port, uploads, requests, c, server.pid)}
                           for c in CONCURRENCY]
        finally:
            server.terminate()
            server.wait(timeout=30)
    payload = {"benchmark": "http_load", "machine": common.machine_info(), "levels": levels,
               "stages_ms": stages,
               "config": {"model": description, "requests": requests, "threads": THREADS,
                          "target_p50_ms": TARGET_P50_MS}}
    for r in levels:
        if r["errors"]:
            print(f"warning: {r['errors']} failed requests ({r['size']} px, {r['concurrency']} "
                  f"clients), first: {r['first_error']}", file=sys.stderr)
    common.finish(payload, markdown(payload), args.json_out)
    return 1 if any(r["errors"] for r in levels) else 0


if __name__ == "__main__":
    sys.exit(common.run_main(main))
