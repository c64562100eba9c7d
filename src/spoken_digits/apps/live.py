"""Live listening over the WebSocket /api/listen?rate=HZ, within the server's `StreamLimits`.

The client sends binary frames of mono float32 samples (little-endian) and gets {"type": "word",
"word": {...}} for each new word (only the new one: the client keeps the string); text frames
{"type": "clear"} and {"type": "end"} clear what the stream keeps, and end it with {"type": "done",
"text": the string}. A bad frame gets {"type": "error", "message": ...} and the stream goes on.

Every limit ends a stream with a WebSocket close code and a reason a person can read: 1008 for a
page from another origin, a bad rate, the session or word limit and an idle stream; 1013 when the
server already has its `max_streams`. All of a stream's work (its Listener, and with it the speech
detector's first load, and every frame) runs on the streams' own threads, never on the event loop
nor in the pool the uploads use; and while an upload is being answered the streams wait (up to
UPLOADS_FIRST s), so that streams cannot starve /api/predict: a stream that falls behind only hears
its words later (its frames wait in bounded queues: see `serve.serve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
from fastapi import WebSocket, WebSocketDisconnect

from spoken_digits.apps.limits import StreamLimits
from spoken_digits.errors import SpokenDigitsError
from spoken_digits.recognize.stream import Listener
from spoken_digits.recognize.words import Word

UPLOADS_FIRST = 0.5  # s a stream's next frame waits at most for the uploads in flight to be answered
MAX_FRAME_BYTES = 256 * 1024  # largest WebSocket frame of audio (over 1 s of 48 kHz float32)
POLICY, TRY_LATER = 1008, 1013  # WebSocket close codes: a limit or rule was broken; the server is busy
T = TypeVar("T")


class StreamEnded(Exception):
    """A stream must close: `code` and `reason` go to the client."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class Streams:
    """The server's live streams: their limits, their own threads, and how many are open."""

    def __init__(self, predictor: Any, limits: StreamLimits) -> None:
        self.predictor, self.limits = predictor, limits
        self.pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="spoken-digits-stream")
        self.open = 0  # changed only on the event loop: no lock needed
        self.uploads = 0  # uploads being answered
        self.quiet = asyncio.Event()  # set while no upload is
        self.quiet.set()
        self.slots = asyncio.Semaphore(limits.workers)  # pieces of work handed to the pool at a time

    @contextlib.asynccontextmanager
    async def upload(self) -> AsyncIterator[None]:
        """Around answering an upload: the streams wait meanwhile (up to UPLOADS_FIRST s per frame)."""
        self.uploads += 1
        self.quiet.clear()
        try:
            yield
        finally:
            self.uploads -= 1
            if not self.uploads:
                self.quiet.set()

    async def serve(self, socket: WebSocket) -> None:
        """One stream, from the handshake to its close."""
        await socket.accept()  # accepted first, so that even a refusal reaches the client with its reason
        if refusal := origin_refusal(socket.headers.get("origin"), socket.headers.get("host", ""), self.limits):
            return await _close(socket, POLICY, refusal)
        rate = socket.query_params.get("rate", "")
        if not rate.isdigit() or not 8000 <= int(rate) <= 192_000:
            message = f"rate must be 8000-192000 Hz (?rate=48000), got {rate!r}"
            await socket.send_json({"type": "error", "message": message})
            return await _close(socket, POLICY, message)
        if self.open >= self.limits.max_streams:
            n = self.limits.max_streams
            return await _close(socket, TRY_LATER, f"server busy: {n} stream{'s' * (n > 1)} open (serve --max-streams)")
        self.open += 1
        try:
            try:
                listener = await self._run(Listener, self.predictor, int(rate))
                await self._converse(socket, listener, int(rate))
            except StreamEnded as end:
                await _close(socket, end.code, end.reason)
        except WebSocketDisconnect:
            return  # the client left mid-stream: nothing to answer
        finally:
            self.open -= 1

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` on the streams' threads, once no upload is being answered (or UPLOADS_FIRST s passed).

        Only as many pieces of work as threads are handed over at a time: the others wait here, where
        an upload can still pass them, not in the pool's queue.
        """
        async with self.slots:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.quiet.wait(), UPLOADS_FIRST)
            return await asyncio.get_running_loop().run_in_executor(self.pool, work, *args)

    async def _converse(self, socket: WebSocket, listener: Listener, rate: int) -> None:
        """Audio frames in, words out, until the client leaves, sends "end" or meets a limit."""
        limits, started, heard = self.limits, time.monotonic(), 0  # heard: samples of audio so far
        session = f"the stream reached the {limits.max_seconds:g} s session limit (serve --max-session)"
        while True:
            left = limits.max_seconds - (time.monotonic() - started)
            if left <= 0:
                return await self._finish(socket, listener, session)
            try:
                async with asyncio.timeout(min(limits.idle_seconds, left)):
                    message = await socket.receive()
            except TimeoutError:
                if time.monotonic() - started >= limits.max_seconds:
                    return await self._finish(socket, listener, session)
                return await self._finish(socket, listener, f"no audio for {limits.idle_seconds:g} s (serve --idle)")
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is None:
                if await self._command(socket, listener, message.get("text") or ""):
                    return
                continue
            problem, samples = _samples(message["bytes"])
            if problem:
                await socket.send_json({"type": "error", "message": problem})
                continue
            room = round(limits.max_seconds * rate) - heard
            heard += len(samples)
            try:
                words = await self._run(listener.feed, samples[:room])
            except (SpokenDigitsError, ValueError) as exc:
                await socket.send_json({"type": "error", "message": str(exc)})
                continue
            await _send_words(socket, words)
            if len(samples) >= room:
                return await self._finish(socket, listener, session)
            if len(listener.words) >= limits.max_words:
                n = limits.max_words
                raise StreamEnded(POLICY, f'the stream kept {n} words, its limit: send {{"type": "clear"}} sooner')

    async def _command(self, socket: WebSocket, listener: Listener, text: str) -> bool:
        """Answer a text frame; True once the stream is over ("end")."""
        command = _command(text)
        if command == "clear":
            listener.clear()
            await socket.send_json({"type": "cleared", "text": ""})
            return False
        if command != "end":
            await socket.send_json({"type": "error", "message": command})
            return False
        await _send_words(socket, await self._run(listener.finish))
        await socket.send_json({"type": "done", "text": listener.text})
        await socket.close()
        return True

    async def _finish(self, socket: WebSocket, listener: Listener, reason: str) -> None:
        """End a stream at a limit: its last words first, then the close with `reason`."""
        await _send_words(socket, await self._run(listener.finish))
        raise StreamEnded(POLICY, reason)


def origin_refusal(origin: str | None, host: str, limits: StreamLimits) -> str:
    """Why a stream from a page at `origin` may not use a server reached as `host` ("" when it may).

    Browsers send Origin with every WebSocket handshake, so a page on another site (cross-site
    WebSocket hijacking) is refused unless allowed; clients that are not browsers send none.
    """
    if origin is None or "*" in limits.allow_origins or origin in limits.allow_origins:
        return ""
    seen = _address(origin)
    if seen is not None:
        own = _address(f"{seen[0]}://{host}")  # the server as the page reached it (port: the page's default)
        if (own is not None and own[1:] == seen[1:]) or seen in {_address(a) for a in limits.allow_origins}:
            return ""
    return f"origin {origin[:60]} is not allowed; see serve --allow-origin"


def _address(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin such as "http://Example.com" (port 80), lower case; None if not one."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not parts.hostname or scheme not in ("http", "https"):
        return None
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


async def _send_words(socket: WebSocket, words: list[Word]) -> None:
    for word in words:
        await socket.send_json({"type": "word", "word": word.to_dict()})


async def _close(socket: WebSocket, code: int, reason: str) -> None:
    """Close with `reason`, cut to the 123 bytes a close frame holds."""
    await socket.close(code=code, reason=reason.encode()[:123].decode(errors="ignore"))


def _samples(data: bytes) -> tuple[str, np.ndarray]:
    """A frame's float32 samples, or what is wrong with it."""
    empty = np.zeros(0, np.float32)
    if len(data) > MAX_FRAME_BYTES:
        limit = f"{MAX_FRAME_BYTES // 1024} KiB"
        return f"audio frame of {len(data)} bytes is over the {limit} limit: send shorter ones", empty
    if len(data) % 4:
        return f"audio frame of {len(data)} bytes is not whole float32 samples (4 bytes each)", empty
    samples = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.isfinite(samples).all():
        return "audio frame holds NaN or infinite samples", empty
    return "", samples


def _command(text: str) -> str:
    """"clear" or "end" from a JSON text frame, else a message saying what is wrong."""
    try:
        kind = json.loads(text).get("type")
    except (json.JSONDecodeError, AttributeError):
        return 'text frames must be JSON such as {"type": "clear"} or {"type": "end"}'
    return kind if kind in ("clear", "end") else f'unknown command {kind!r}: use "clear" or "end"'
