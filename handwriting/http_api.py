"""Read digits over HTTP, without Streamlit: a small JSON API on Starlette + uvicorn.

Why a second front end: the Streamlit app is for people; programs (a form backend, a
phone app, a batch job in another language) need a plain request/response interface.
Every decision is the app's and the CLI's own: uploads go through
``uploads.check_upload`` (type, size, decompression-bomb limits), images through the shared
preprocessing, and the answer is whatever ``Predictor`` returns, serialized field by
field so new fields (a calibrated verdict, a message) appear without changes here. A bad
input gets a 4xx with a JSON message saying what to send instead, never a traceback.

    handwriting serve                              # http://127.0.0.1:8000, promoted model
    curl --data-binary @digit.png -H 'Content-Type: image/png' http://127.0.0.1:8000/predict
    curl -F file=@number.png http://127.0.0.1:8000/read-number
    curl --data-binary @number.json -H 'Content-Type: application/json' http://127.0.0.1:8000/read-number

Endpoints: ``POST /predict`` (one character), ``POST /read-number`` (a row of them), both
taking the image as the raw body (name the type with Content-Type or ``?filename=x.png``)
or as a multipart form field ``file``; ``/read-number`` also takes a drawing's strokes as
``Content-Type: application/json`` in the stroke format (``stroke_format``), read by
their order like the app's number canvas; ``GET /health``; ``GET /model``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from handwriting import serving
from handwriting.grey_image import ImageError
from handwriting.inference import ModelLoadError, Predictor
from handwriting.model_card import describe_model
from handwriting.model_loading import (
    MODEL_DIR_ENV,
    load_predictor,
    model_cache_key,
    promoted_model_path,
)
from handwriting.preprocessing import EmptyImageError
from handwriting.stroke_format import StrokeDrawing, StrokeFormatError, loads_strokes
from handwriting.uploads import MAX_UPLOAD_BYTES, UPLOAD_TYPES, UploadError, check_upload

log = logging.getLogger(__name__)

# Content-Type -> a file name check_upload accepts, for raw bodies sent without a name.
CONTENT_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg", "image/bmp": "bmp",
                 "image/x-ms-bmp": "bmp", "image/gif": "gif", "image/webp": "webp"}
MAX_TOP_K = 50
# Oversized bodies are read and dropped up to this size before the 413 (see _read_limited).
DRAIN_BYTES = 32 * 1024 * 1024


class BadRequest(Exception):
    """A request this API answers with ``status`` and a JSON ``{"error", "message"}``."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


class ModelHolder:
    """The model file and the predictor loaded from it, reloaded when the file changes:
    promotion replaces it atomically (new mtime), so a newly promoted model is served from
    the next request on, without a restart, as the Streamlit app does."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._key: tuple[str, int] | None = None
        self._predictor: Predictor | None = None

    def get(self) -> Predictor:
        key = model_cache_key(self.path)
        if self._predictor is None or key != self._key:
            try:
                self._predictor = load_predictor(self.path)
            except ModelLoadError as exc:  # includes "no model file" (ModelNotFoundError)
                self._predictor = None
                raise BadRequest(503, "model_unavailable", str(exc)) from exc
            self._key = key
        return self._predictor


def _plain(value: Any) -> Any:
    """A JSON value for simple fields (numpy scalars too); ``None`` for anything else."""
    if isinstance(value, np.generic):
        value = value.item()
    return value if value is None or isinstance(value, (str, int, float, bool)) else None


def prediction_json(prediction: Any, k: int = 3) -> dict[str, Any]:
    """Every simple field of a Prediction, its top ``k`` and all probabilities by class.

    Generic on purpose: fields added to Prediction later (a verdict, a junk score, a
    message) are passed on as they are, so clients see what the CLI and the app see."""
    out: dict[str, Any] = {}
    if is_dataclass(prediction):
        for f in fields(prediction):
            value = _plain(getattr(prediction, f.name))
            if value is not None or getattr(prediction, f.name) is None:
                out[f.name] = value
    for name in ("label", "confidence", "verdict", "message"):  # properties too
        value = getattr(prediction, name, None)
        if name not in out and value is not None:
            out[name] = str(value) if _plain(value) is None else _plain(value)
    if "verdict" in out:  # the app's and the CLI's words for "not sure" / "not a digit"
        from handwriting.answers import explanation

        out["message"] = explanation(prediction) or None
    out["top_k"] = [{"label": label, "probability": p} for label, p in prediction.top_k(k)]
    out["probabilities"] = {str(c): float(p) for c, p in
                            zip(prediction.classes, prediction.probabilities, strict=True)}
    return out


def number_json(reading: Any, k: int = 3) -> dict[str, Any]:
    """A NumberReading: the string, its confidences and each character with its box."""
    return {
        "text": reading.text,
        "confidence": float(reading.confidence),
        "min_confidence": float(reading.min_confidence),
        "characters": [
            {"label": c.label, "confidence": float(c.confidence), "bbox": [int(v) for v in c.bbox],
             "top_k": [{"label": label, "probability": p} for label, p in c.top_k(k)]}
            for c in reading.characters
        ],
    }


def _top_k(request: Request) -> int:
    raw = request.query_params.get("k", "3")
    try:
        k = int(raw)
    except ValueError:
        k = 0
    if not 1 <= k <= MAX_TOP_K:
        raise BadRequest(400, "bad_parameter", f"k must be a whole number from 1 to {MAX_TOP_K}, got {raw!r}")
    return k


async def _read_limited(request: Request) -> bytes:
    """The body, refusing (413) more than the upload limit without keeping it. The rest of
    an oversized body is read and dropped (up to DRAIN_BYTES) before answering: a client
    still sending would otherwise see a reset connection instead of the 413's message."""
    limit = MAX_UPLOAD_BYTES + 65536  # room for multipart headers
    length = request.headers.get("content-length")
    declared = int(length) if length is not None and length.isdigit() else None
    if declared is not None and declared > DRAIN_BYTES:
        raise _too_big()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DRAIN_BYTES:
            break
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise _too_big()
    return b"".join(chunks)


def _too_big() -> BadRequest:
    return BadRequest(413, "too_large", f"The upload is larger than {MAX_UPLOAD_BYTES / 1_048_576:.0f} "
                      "MB. Crop or downscale it: a digit needs only a few hundred pixels per side.")


async def upload(request: Request) -> tuple[str, bytes]:
    """(file name, bytes) of the image in the request: a multipart field ``file``, or the
    raw body named by ``?filename=`` or its Content-Type."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await _read_limited(request)
    if content_type == "multipart/form-data":
        from starlette.datastructures import UploadFile

        async def replay() -> dict[str, Any]:  # the body was read (size-checked) already
            return {"type": "http.request", "body": body, "more_body": False}

        form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
        item = form.get("file")
        if not isinstance(item, UploadFile):
            raise BadRequest(400, "no_file", "Send the image as the form field 'file' "
                             "(curl -F file=@digit.png), or as the raw request body.")
        return item.filename or "upload", await item.read()
    name = request.query_params.get("filename")
    if not name:
        suffix = CONTENT_TYPES.get(content_type)
        if suffix is None:
            raise BadRequest(415, "unsupported_type", (
                f"Say what the body is: Content-Type image/png (or {', '.join(sorted(UPLOAD_TYPES))}) "
                f"or ?filename=digit.png; got Content-Type {content_type or 'none'!r}."))
        name = f"upload.{suffix}"
    return name, body


def _checked_image(name: str, data: bytes) -> Any:
    """uploads.check_upload, with its UploadError as 415 (type), 413 (size) or 400."""
    try:
        return check_upload(name, data)
    except UploadError as exc:
        suffix = Path(name).suffix.lower().lstrip(".")
        status = 415 if suffix not in UPLOAD_TYPES else 413 if len(data) > MAX_UPLOAD_BYTES else 400
        raise BadRequest(status, "bad_upload", str(exc)) from exc


def _strokes(body: bytes) -> StrokeDrawing:
    """A stroke JSON body (stroke_format), its problems as 413 (size) or 400 with where."""
    if len(body) > MAX_UPLOAD_BYTES:
        raise BadRequest(413, "bad_strokes", f"the stroke JSON is {len(body)} bytes; the limit is "
                         f"{MAX_UPLOAD_BYTES} bytes")
    try:
        return loads_strokes(body, source="the request body")
    except StrokeFormatError as exc:
        raise BadRequest(400, "bad_strokes", str(exc)) from exc


Handler = Callable[[Request], Awaitable[JSONResponse]]


def _answers_errors(handler: Handler) -> Handler:
    """Bad input -> its 4xx; an unexpected failure -> 500 with a message, never a traceback."""

    async def wrapped(request: Request) -> JSONResponse:
        try:
            return await handler(request)
        except BadRequest as exc:
            return JSONResponse({"error": exc.error, "message": exc.message}, status_code=exc.status)
        except EmptyImageError as exc:  # readable, but no ink: the CLI's message
            return JSONResponse({"error": "no_ink", "message": str(exc)}, status_code=422)
        except ImageError as exc:
            return JSONResponse({"error": "bad_image", "message": str(exc)}, status_code=400)
        except Exception:
            log.exception("unexpected failure on %s", request.url.path)
            return JSONResponse({"error": "internal", "message": "The server failed to read this "
                                 "image; the failure is in the server's log."}, status_code=500)

    return wrapped


def create_app(model_path: str | Path) -> Starlette:
    """The ASGI app serving the model at ``model_path`` (a model.ckpt)."""
    holder = ModelHolder(model_path)

    @_answers_errors
    async def predict(request: Request) -> JSONResponse:
        k = _top_k(request)
        image = _checked_image(*await upload(request))
        return JSONResponse(prediction_json(serving.read(holder.get(), image).prediction, k))

    @_answers_errors
    async def read_number_route(request: Request) -> JSONResponse:
        k = _top_k(request)
        if request.headers.get("content-type", "").startswith("application/json"):
            source = _strokes(await request.body())  # the stroke JSON (stroke_format)
        else:
            source = _checked_image(*await upload(request))
        return JSONResponse(number_json(serving.read(holder.get(), source, number=True).number, k))

    @_answers_errors
    async def health(request: Request) -> JSONResponse:
        predictor = holder.get()
        return JSONResponse({"status": "ok", "model": str(holder.path), "classes": predictor.classes})

    @_answers_errors
    async def model(request: Request) -> JSONResponse:
        rows = describe_model(holder.get(), holder.path)
        return JSONResponse({label: value for label, value in rows})

    routes = [Route("/predict", predict, methods=["POST"]),
              Route("/read-number", read_number_route, methods=["POST"]),
              Route("/health", health, methods=["GET"]),
              Route("/model", model, methods=["GET"])]
    return Starlette(routes=routes)


def app_from_env() -> Starlette:
    """App factory for running under uvicorn directly (several workers, TLS, a socket):
    ``uvicorn handwriting.http_api:app_from_env --factory --workers 2``; serves the
    promoted model, or ``$HANDWRITING_MODEL_DIR/model.ckpt``."""
    return create_app(promoted_model_path(os.environ.get(MODEL_DIR_ENV)))


def serve(model_path: str | Path, host: str = "127.0.0.1", port: int = 8000, threads: int = 1) -> None:
    """Load the model (failing now, with the reason, if it cannot be), then serve until
    Ctrl-C. One process; the work per request is about a millisecond of CPU."""
    import torch
    import uvicorn

    torch.set_num_threads(threads)
    load_predictor(model_path)  # a wrong --model fails here, not on the first request
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host}: anyone who can reach this machine can use the API")
    print(f"Serving {model_path} on http://{host}:{port} (POST /predict, /read-number; GET /health)")
    uvicorn.run(create_app(model_path), host=host, port=port, log_level="warning", access_log=False)
