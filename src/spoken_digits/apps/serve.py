"""`spoken-digits serve`: a local web page and JSON API for trying a model with your own voice.

FastAPI on uvicorn. Inference runs in a worker thread, never on the event loop. Request bodies
are capped while they stream in, whatever their encoding, and bad audio gets a 4xx with a JSON
`error`, never a 500. Serves a checkpoint (.pt) or an exported ONNX model alike.

Live listening, the WebSocket /api/listen, lives in `live.py`, with its limits and its own threads.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from importlib import resources
from typing import Any, Protocol

import numpy as np
from fastapi import FastAPI, Request, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from spoken_digits.apps.limits import StreamLimits
from spoken_digits.apps.live import MAX_FRAME_BYTES, Streams
from spoken_digits.config import AudioConfig, RunConfig
from spoken_digits.errors import AudioError
from spoken_digits.frontend import audio
from spoken_digits.recognize.predict import Inspection

MAX_BYTES = 10 * 1024 * 1024  # largest accepted request body
MAX_SECONDS = 30.0  # longest accepted audio


class BodyTooLarge(Exception):
    """The request body passed MAX_BYTES."""


class Model(Protocol):
    """What the app needs of a loaded model: a checkpoint's `Predictor` or an `OnnxPredictor`."""

    @property
    def config(self) -> RunConfig: ...
    @property
    def info(self) -> dict[str, object]: ...
    @property
    def classes(self) -> Sequence[str]: ...
    @property
    def audio_cfg(self) -> AudioConfig: ...
    @property
    def hears_strings(self) -> bool: ...
    def inspect(self, wave: np.ndarray) -> Inspection: ...
    def model_probabilities(self, prepared: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray: ...


def create_app(predictor: Model, *, max_bytes: int = MAX_BYTES, limits: StreamLimits | None = None) -> FastAPI:
    """The web app around one loaded model; `limits` bound its live streams (default: StreamLimits())."""
    streams = Streams(predictor, limits or StreamLimits())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        streams.pool.shutdown(wait=False, cancel_futures=True)

    summary = "Recognise a spoken digit in an audio clip."
    app = FastAPI(title="spoken-digits", version="1", summary=summary, lifespan=lifespan)
    page = resources.files("spoken_digits").joinpath("apps/web/index.html").read_text(encoding="utf-8")
    cfg = predictor.config
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
        return {"config": cfg.to_dict(), "classes": predictor.classes, "info": predictor.info}

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
            return _error(413, f"request body is over the {_size(max_bytes)} limit")
        except MultiPartException as exc:
            return _error(400, f"not a valid multipart upload ({exc.message}); send the file as a field 'file'")
        if not data:
            return _error(400, "no audio: send the file as the request body or as a multipart field 'file'")
        try:
            async with streams.upload():  # the streams wait while an upload is decoded
                result = await run_in_threadpool(_inspect, predictor, data, name, max_duration)
        except AudioError as exc:
            return _error(422, str(exc))
        return JSONResponse(result)

    @app.websocket("/api/listen")
    async def listen(socket: WebSocket) -> None:
        """Live listening: see live.py for the protocol and its limits."""
        await streams.serve(socket)

    return app


async def _read_upload(request: Request, max_bytes: int) -> tuple[str, bytes]:
    """(name, bytes) of the upload: the raw body, or the multipart field `file`.

    Raises BodyTooLarge as soon as the body passes `max_bytes`, also when it is chunked (no
    Content-Length) multipart, so no oversized upload is ever read whole or spooled to disk.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge
    async with aclosing(_capped(request.stream(), max_bytes)) as body:
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            return "upload", b"".join([chunk async for chunk in body])
        form = await MultiPartParser(request.headers, body, max_part_size=max_bytes).parse()
    try:  # parts may be spooled to temporary files: closing the form releases them
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return "upload", b""
        return upload.filename or "upload", await upload.read()
    finally:
        await form.close()


async def _capped(stream: AsyncGenerator[bytes, None], max_bytes: int) -> AsyncGenerator[bytes, None]:
    """The chunks of `stream`, raising BodyTooLarge as soon as their total passes `max_bytes`."""
    size = 0
    async with aclosing(stream):
        async for chunk in stream:
            size += len(chunk)
            if size > max_bytes:
                raise BodyTooLarge
            yield chunk


def _inspect(predictor: Model, data: bytes, name: str, max_duration: float) -> dict[str, Any]:
    """The JSON answer for one upload; `features` only where the model exposes its input (not ONNX)."""
    wave = audio.read_audio_bytes(data, predictor.audio_cfg.sr, name=name, max_duration=max_duration)
    if predictor.hears_strings:  # a string model: the digits heard, no per-class picture
        from spoken_digits.recognize.strings import transcribe

        heard = transcribe(predictor, [wave])[0]  # type: ignore[arg-type]  # any Model is a BasePredictor
        peak_dbfs, rms_dbfs = audio.levels_dbfs(wave)
        return {
            "digit": heard.text,
            "probability": min((w.probability for w in heard.words), default=0.0),
            "probabilities": {},
            "words": [w.to_dict() for w in heard.words],
            "seconds": round(heard.seconds, 3),
            "peak_dbfs": round(peak_dbfs, 1),
            "rms_dbfs": round(rms_dbfs, 1),
            "warnings": [] if heard.words else ["no digits heard"],
        }
    seen = predictor.inspect(wave)
    best = int(np.argmax(seen.probabilities))
    answer: dict[str, Any] = {
        "digit": predictor.classes[best],  # the class name, a digit or any word the model knows
        "label": predictor.classes[best],
        "probability": float(seen.probabilities[best]),
        "probabilities": {c: float(p) for c, p in zip(predictor.classes, seen.probabilities, strict=True)},
        "seconds": round(seen.seconds, 3),
        "peak_dbfs": round(seen.peak_dbfs, 1),
        "rms_dbfs": round(seen.rms_dbfs, 1),
        "warnings": list(seen.warnings),
    }
    if seen.features is not None:
        layout = "time x embedding" if predictor.config.features.encoder else "time x mel"  # the encoder's 96-d
        answer["features"] = {"layout": layout, "values": np.round(seen.features, 3).tolist()}
    return answer


def _size(n_bytes: int) -> str:
    """`n_bytes` for people: "10 MB", or "50000 bytes" below a megabyte (not "0 MB")."""
    return f"{n_bytes // (1024 * 1024)} MB" if n_bytes >= 1024 * 1024 else f"{n_bytes} bytes"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def serve(predictor: Model, *, host: str = "127.0.0.1", port: int = 8000, limits: StreamLimits | None = None) -> None:
    """Serve the page and API for `predictor` until interrupted."""
    import uvicorn

    app = create_app(predictor, limits=limits)
    # WebSocket frames: one over twice the limit closes the stream (1009) as it arrives, and at most four
    # wait per stream, instead of uvicorn's 16 MB and 32, so streams cannot fill the memory. No keep-alive
    # pings: a stream the server is behind on does not read the pong and was closed (1011) for it; the
    # idle limit ends a stream whose client has gone.
    frames = {"ws_max_size": 2 * MAX_FRAME_BYTES, "ws_max_queue": 4, "ws_ping_interval": None}
    uvicorn.run(app, host=host, port=port, log_level="info", **frames)  # type: ignore[arg-type]
