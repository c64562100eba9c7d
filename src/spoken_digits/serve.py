"""`spoken-digits serve`: a local web page and JSON API for trying a model with your own voice.

FastAPI on uvicorn. Inference runs in a worker thread, never on the event loop. Request bodies
are capped, and bad audio gets a 4xx with a JSON `error`, never a 500.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile

from spoken_digits import audio
from spoken_digits.errors import AudioError
from spoken_digits.predict import Predictor

MAX_BYTES = 10 * 1024 * 1024  # largest accepted request body
MAX_SECONDS = 30.0  # longest accepted audio


class BodyTooLarge(Exception):
    """The request body passed MAX_BYTES."""


def create_app(predictor: Predictor, *, max_bytes: int = MAX_BYTES) -> FastAPI:
    """The web app around one loaded model."""
    app = FastAPI(title="spoken-digits", version="1", summary="Recognise a spoken digit in an audio clip.")
    page = resources.files("spoken_digits").joinpath("web/index.html").read_text(encoding="utf-8")
    cfg = predictor.checkpoint.config
    max_duration = min(MAX_SECONDS, cfg.audio.max_duration)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/api/health")
    def health() -> dict[str, str]:
        """Liveness check."""
        return {"status": "ok"}

    @app.get("/api/model")
    def model() -> dict[str, Any]:
        """The model's configuration, classes and test metrics."""
        return {"config": cfg.to_dict(), "classes": predictor.classes, "info": predictor.checkpoint.info}

    @app.post(
        "/api/predict",
        responses={
            400: {"description": "no audio"},
            413: {"description": "body too large"},
            422: {"description": "not usable audio"},
        },
    )
    async def predict(request: Request) -> JSONResponse:
        """Label one clip sent as the raw request body or as a multipart field named `file`."""
        try:
            name, data = await _read_upload(request, max_bytes)
        except BodyTooLarge:
            return _error(413, f"request body is over the {max_bytes // (1024 * 1024)} MB limit")
        if not data:
            return _error(400, "no audio: send the file as the request body or as a multipart field 'file'")
        try:
            result = await run_in_threadpool(_inspect, predictor, data, name, max_duration)
        except AudioError as exc:
            return _error(422, str(exc))
        return JSONResponse(result)

    return app


async def _read_upload(request: Request, max_bytes: int) -> tuple[str, bytes]:
    """(name, bytes) of the upload, read in chunks so an oversized body is refused early."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_part_size=max_bytes)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return "upload", b""
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise BodyTooLarge
        return upload.filename or "upload", data
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge
        chunks.append(chunk)
    return "upload", b"".join(chunks)


def _inspect(predictor: Predictor, data: bytes, name: str, max_duration: float) -> dict[str, Any]:
    wave = audio.read_audio_bytes(data, predictor.audio_cfg.sr, name=name, max_duration=max_duration)
    seen = predictor.inspect(wave)
    best = int(np.argmax(seen.probabilities))
    return {
        "digit": predictor.classes[best],
        "probability": float(seen.probabilities[best]),
        "probabilities": {c: float(p) for c, p in zip(predictor.classes, seen.probabilities, strict=True)},
        "seconds": round(seen.seconds, 3),
        "peak_dbfs": round(seen.peak_dbfs, 1),
        "rms_dbfs": round(seen.rms_dbfs, 1),
        "warnings": list(seen.warnings),
        "features": {"layout": "time x mel", "values": np.round(seen.features, 3).tolist()},
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def serve(predictor: Predictor, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the page and API for `predictor` until interrupted."""
    import uvicorn

    uvicorn.run(create_app(predictor), host=host, port=port, log_level="info")
