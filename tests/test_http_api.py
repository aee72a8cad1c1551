"""The HTTP API (handwriting/http_api.py) on a real uvicorn server on loopback: real MNIST
digits in, the same answers as the in-process Predictor out; every bad input gets its 4xx
with a JSON message (the CLI's message where the CLI has one), never a traceback."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from PIL import Image

from handwriting import cli
from handwriting.http_api import create_app
from handwriting.inference import Predictor
from handwriting.preprocessing import prepare_image
from handwriting.stroke_format import StrokeDrawing
from handwriting.uploads import MAX_UPLOAD_BYTES
from tests.browser_helpers import NUMBER_CANVAS, ten_strokes, write_promoted_model

ROOT = Path(__file__).resolve().parents[1]


def png(image28: np.ndarray, scale: int = 5, invert: bool = True) -> bytes:
    """A real digit as a user would upload it: enlarged, dark ink on white paper."""
    pixels = np.round(np.clip(image28, 0, 1) * 255).astype(np.uint8)
    picture = Image.fromarray(255 - pixels if invert else pixels).resize(
        (28 * scale, 28 * scale), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
            method: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        assert b"Traceback" not in body
        try:
            return error.code, json.loads(body)
        except json.JSONDecodeError:
            return error.code, {"raw": body.decode(errors="replace")}


def post_image(base: str, path: str, data: bytes, content_type: str = "image/png") -> tuple[int, dict]:
    return request(base + path, data, {"Content-Type": content_type})


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class LoopbackServer:
    """uvicorn in a thread on 127.0.0.1, on a port the OS picks."""

    def __init__(self, model_path: Path) -> None:
        config = uvicorn.Config(create_app(model_path), host="127.0.0.1", port=0,
                                log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory, trained_model) -> Path:
    return write_promoted_model(tmp_path_factory.mktemp("http-model"), trained_model)


@pytest.fixture(scope="module")
def base(model_path: Path) -> Iterator[str]:
    with LoopbackServer(model_path) as url:
        yield url


def test_predict_answers_as_the_predictor_does(base: str, model_path: Path, mnist) -> None:
    images, labels = mnist
    predictor = Predictor.from_checkpoint(model_path)
    answers, expected = [], []
    for image in images[-20:]:
        status, body = post_image(base, "/predict", png(image))
        assert status == 200, body
        answers.append(body)
        expected.append(predictor.predict(prepare_image(Image.open(io.BytesIO(png(image))))))
    assert [a["label"] for a in answers] == [e.label for e in expected]
    assert np.mean([a["label"] == str(y) for a, y in zip(answers, labels[-20:], strict=True)]) >= 0.8
    first, want = answers[0], expected[0]
    assert first["confidence"] == pytest.approx(want.confidence, abs=1e-6)
    assert [t["label"] for t in first["top_k"]] == [label for label, _ in want.top_k(3)]
    assert sum(first["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert list(first["probabilities"]) == predictor.classes
    verdict = getattr(want, "verdict", None)  # the calibrated reader's verdict, when it has one
    if verdict is not None:
        assert first["verdict"] == verdict


def test_multipart_upload_and_top_k(base: str, mnist) -> None:
    body, content_type = multipart("file", "digit.png", png(mnist[0][-1]))
    status, answer = request(base + "/predict?k=5", body, {"Content-Type": content_type})
    assert status == 200, answer
    assert len(answer["top_k"]) == 5
    status, answer = request(base + "/predict?filename=digit.png", png(mnist[0][-1]),
                             {"Content-Type": "application/octet-stream"})
    assert status == 200, answer


def test_read_number_reads_a_row_of_digits(base: str, mnist) -> None:
    images, labels = mnist
    row = np.concatenate([np.pad(images[i], ((6, 6), (6, 6))) for i in (-1, -2, -3)], axis=1)
    status, answer = post_image(base, "/read-number", png(row, scale=4))
    assert status == 200, answer
    assert len(answer["text"]) == 3
    assert [c["label"] for c in answer["characters"]] == list(answer["text"])
    assert all(len(c["bbox"]) == 4 for c in answer["characters"])


def test_read_number_takes_strokes_as_json(base: str) -> None:
    """The stroke format (stroke_format) as the body: read by the strokes' order, like the
    app's number canvas; a malformed body is a 400 that says where."""
    body = StrokeDrawing.fit(ten_strokes(), 20.0, *NUMBER_CANVAS).to_json().encode()
    status, answer = request(f"{base}/read-number", body, {"Content-Type": "application/json"})
    assert status == 200, answer
    assert answer["text"] == "10" and len(answer["characters"]) == 2
    bad = json.dumps({"strokes": [[[1, 2], [3, "x"]]]}).encode()
    status, answer = request(f"{base}/read-number", bad, {"Content-Type": "application/json"})
    assert status == 400 and answer["error"] == "bad_strokes"
    assert "strokes[0][1]" in answer["message"]


def test_bad_inputs_get_4xx_with_a_message(base: str, model_path: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    blank = png(np.zeros((28, 28), dtype=np.float32))
    status, answer = post_image(base, "/predict", blank)
    assert (status, answer["error"]) == (422, "no_ink")
    # The CLI's answer to the same picture, word for word.
    (tmp_path / "blank.png").write_bytes(blank)
    assert cli.main(["predict", str(tmp_path / "blank.png"), "--model", str(model_path)]) == 1
    assert answer["message"] in capsys.readouterr().err

    cases = [
        (b"\x89PNG\r\n\x1a\n not really", "image/png", 400, "bad_upload"),
        (b"", "image/png", 400, "bad_upload"),
        (b"hello", "text/plain", 415, "unsupported_type"),
        (b"x" * (MAX_UPLOAD_BYTES + 100_000), "image/png", 413, "too_large"),
    ]
    for data, content_type, want_status, want_error in cases:
        status, answer = post_image(base, "/predict", data, content_type)
        assert (status, answer.get("error")) == (want_status, want_error), answer
        assert answer["message"]
    status, answer = request(base + "/predict?filename=notes.txt", b"hello")
    assert (status, answer["error"]) == (415, "bad_upload")
    assert "not a supported image type" in answer["message"]
    status, answer = request(base + "/predict?k=zero", blank, {"Content-Type": "image/png"})
    assert (status, answer["error"]) == (400, "bad_parameter")
    body, content_type = multipart("picture", "digit.png", blank)
    status, answer = request(base + "/predict", body, {"Content-Type": content_type})
    assert (status, answer["error"]) == (400, "no_file")
    status, _ = request(base + "/predict", method="GET")
    assert status == 405


def test_health_model_and_a_model_promoted_while_running(tmp_path: Path, trained_model) -> None:
    model_dir = tmp_path / "promoted"
    with LoopbackServer(model_dir / "model.ckpt") as url:
        status, answer = request(url + "/health")
        assert (status, answer["error"]) == (503, "model_unavailable")
        assert "python train.py" in answer["message"]
        write_promoted_model(model_dir, trained_model)  # promoted while the server runs
        status, answer = request(url + "/health")
        assert (status, answer["status"], answer["classes"]) == (200, "ok", list("0123456789"))
        status, answer = request(url + "/model")
        assert status == 200 and answer["Validation accuracy"] == "93.21 %"


@pytest.mark.slow  # starts a process
def test_cli_serve_listens_on_loopback(model_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "handwriting.cli", "serve", "--model",
                               str(model_path), "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, answer = request(f"http://127.0.0.1:{port}/health")
                break
            except urllib.error.URLError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "handwriting serve did not answer in 60 s"
                time.sleep(0.2)
        assert (status, answer["status"]) == (200, "ok")
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_cli_serve_refuses_a_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--model", str(tmp_path / "nothing"), "--port", "1"]) == 2
    assert "No model file" in capsys.readouterr().err
