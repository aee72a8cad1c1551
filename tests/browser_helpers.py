"""Builders shared by the app tests (serving, AppTest, browser): promoted-model files,
canvas-like drawings, a free port and a Streamlit server that is always stopped."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from handwriting.data.embedded import EmbeddedMNIST
from handwriting.model import MLPClassifier

ROOT = Path(__file__).resolve().parents[1]
CANVAS = 280
NUMBER_CANVAS = (700, 200)  # the app's number-mode canvas (width, height)


def load_mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    """The packaged 10,000 MNIST digits as float32 [0, 1] images and int64 labels."""
    data = EmbeddedMNIST().load().train
    return data.images.astype(np.float32) / 255.0, data.labels


def train_tiny_model(images: np.ndarray, labels: np.ndarray, n: int = 6000) -> MLPClassifier:
    """784 -> 64 -> 10 trained for 4 epochs on the first ``n`` digits (under a second with
    one torch thread): reads held-out MNIST at about 90 %, enough to check real answers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy 2-core machine the thread pool makes this 20x slower
    try:
        torch.manual_seed(0)
        model = MLPClassifier(hidden_sizes=(64,), lr=3e-3)
        x = torch.as_tensor(images[:n]).reshape(-1, 784)
        y = torch.as_tensor(labels[:n])
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        generator = torch.Generator().manual_seed(0)
        model.train()
        for _ in range(4):
            for batch in torch.randperm(len(x), generator=generator).split(100):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def write_promoted_model(
    directory: Path,
    model: MLPClassifier | None = None,
    val_acc: float = 0.9321,
    test_acc: float = 0.9105,
    metadata: bool = True,
    drawn: dict[str, float] | None = None,
    calibration: Any = None,
) -> Path:
    """A model.ckpt laid out exactly as promotion writes it (state_dict, hyper_parameters,
    'handwriting' metadata block); ``drawn``: drawn/* metrics to add; ``calibration``: a
    ``handwriting.calibration.Calibration`` stored as promotion stores it."""
    if model is None:
        torch.manual_seed(0)
        model = MLPClassifier(hidden_sizes=(32, 16), lr=0.002)
    directory.mkdir(parents=True, exist_ok=True)
    checkpoint: dict = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    if metadata:
        checkpoint["handwriting"] = {
            "metrics": {"val/acc": val_acc, "test/acc": test_acc, "train_clean/acc": 0.99, "epochs": 3.0,
                        **(drawn or {})},
            "config": {"model": {"lr": float(model.hparams["lr"])}},
            "data_fingerprint": "test-data",
            "data_source": "handwriting.data.embedded.EmbeddedMNIST",
            "classes": model.class_names,
            "run_dir": "/runs/test-run",
            "promoted_at": "2026-01-02T03:04:05+00:00",
        }
    if calibration is not None:
        checkpoint["calibration"] = calibration.to_dict()
    path = directory / "model.ckpt"
    tmp = directory / ".model.ckpt.tmp"
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)  # as promotion does: readers never see half a file
    return path


def canvas_rgba(
    strokes: Sequence[Sequence[tuple[float, float]]],
    width: int = 20,
    size: tuple[int, int] = (CANVAS, CANVAS),
) -> np.ndarray:
    """What the app's canvas returns: (height, width, 4) uint8, white strokes on opaque
    black; ``size`` is (width, height), 280x280 like the single-character canvas."""
    image = Image.new("RGBA", size, (0, 0, 0, 255))
    draw = ImageDraw.Draw(image)
    for points in strokes:
        draw.line(list(points), fill=(255, 255, 255, 255), width=width, joint="curve")
        for x, y in (points[0], points[-1]):  # round caps, like the canvas brush
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill="white")
    return np.asarray(image)


def one_stroke(size: float = CANVAS) -> list[tuple[float, float]]:
    """A vertical stroke through the middle: a "1"."""
    return [(size / 2, size * 0.2 + i * size * 0.6 / 40) for i in range(41)]


def zero_stroke(size: float = CANVAS, points: int = 64) -> list[tuple[float, float]]:
    """A closed upright ellipse: a "0"."""
    cx = cy = size / 2
    return [
        (
            cx + 0.25 * size * math.sin(2 * math.pi * i / (points - 4)),
            cy - 0.34 * size * math.cos(2 * math.pi * i / (points - 4)),
        )
        for i in range(points)
    ]


def ten_strokes(size: tuple[int, int] = NUMBER_CANVAS) -> list[list[tuple[float, float]]]:
    """A "1" and a "0" side by side, a gap between them, on the wide number canvas."""
    width, height = size
    one = [(0.40 * width, height * (0.15 + 0.7 * i / 40)) for i in range(41)]
    cx, cy, points = 0.58 * width, height / 2, 64
    zero = [
        (
            cx + 0.22 * height * math.sin(2 * math.pi * i / (points - 4)),
            cy - 0.35 * height * math.cos(2 * math.pi * i / (points - 4)),
        )
        for i in range(points)
    ]
    return [one, zero]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_health(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Poll Streamlit's health endpoint until it answers "ok" (or the server died)."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"streamlit exited with code {process.returncode} before it was healthy"
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.read().decode().strip() == "ok":
                    return
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer 'ok' within {timeout:.0f} s ({last_error})")


@contextlib.contextmanager
def streamlit_server(
    model_dir: Path,
    log_path: Path,
    python: str,
    timeout: float = 120.0,
    extra_env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run ``streamlit run app/streamlit_app.py`` on a free loopback port; yield its URL.

    The server gets its own process group and is killed with it on exit, whatever
    happened in between, so no server outlives the test.
    """
    port = free_port()
    env = {
        **os.environ,
        **(extra_env or {}),
        "HANDWRITING_MODEL_DIR": str(model_dir),
        "WANDB_MODE": "offline",
    }
    command = [
        python,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "app" / "streamlit_app.py"),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",  # loopback only; also skips the external-IP lookup
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            url = f"http://127.0.0.1:{port}"
            try:
                wait_for_health(f"{url}/_stcore/health", process, timeout)
            except (RuntimeError, TimeoutError) as exc:
                log.flush()
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{exc}\n--- streamlit log ---\n{tail}") from exc
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)
