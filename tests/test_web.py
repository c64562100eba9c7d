"""The web demo: API behaviour (test client), a bounded load test, and a real browser with a fake microphone."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import shutil
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from spoken_digits.apps.serve import create_app
from spoken_digits.models import checkpoint
from spoken_digits.recognize.predict import OnnxPredictor
from spoken_digits.recognize.torchmodel import Predictor
from test_checkpoint import make_checkpoint

CHROMIUM = "/usr/bin/chromium"


def wav_bytes(y: np.ndarray, sr: int, **kwargs) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, y, sr, format="WAV", **kwargs)
    return buffer.getvalue()


TONE = 0.3 * np.sin(2 * np.pi * 440 * np.arange(4000) / 8000)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.pt"
    checkpoint.save(path, make_checkpoint())
    return Predictor.from_file(path)


@pytest.fixture(scope="module")
def client(predictor):
    return TestClient(create_app(predictor))


def test_health_model_page_and_openapi(client):
    assert client.get("/api/health").json() == {"status": "ok"}
    model = client.get("/api/model").json()
    assert model["classes"] == [str(d) for d in range(10)] and model["config"]["audio"]["sr"] == 8000
    page = client.get("/")
    assert page.status_code == 200 and 'id="record"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # self-contained: works offline
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/predict", "/api/health", "/api/model"} <= set(paths)


@pytest.mark.parametrize("as_multipart", [False, True])
def test_predict_answers_with_probabilities_and_what_the_model_saw(client, as_multipart):
    stereo_48k = np.stack([np.sin(2 * np.pi * 300 * np.arange(24000) / 48000)] * 2, axis=1) * 0.3
    data = wav_bytes(stereo_48k, 48000, subtype="PCM_24")
    if as_multipart:
        response = client.post("/api/predict", files={"file": ("mine.wav", data, "audio/wav")})
    else:
        response = client.post("/api/predict", content=data, headers={"content-type": "audio/wav"})
    answer = response.json()
    assert response.status_code == 200
    assert answer["digit"] in answer["probabilities"] and abs(sum(answer["probabilities"].values()) - 1) < 1e-4
    assert answer["seconds"] == pytest.approx(0.5, abs=0.01)
    features = np.array(answer["features"]["values"])
    assert features.shape == (16, 80)  # the model's (time, mel) input after trim, padding and standardisation


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "no audio"),
        (b"definitely not audio", 422, "upload: not a readable audio file"),
        (wav_bytes(np.zeros(8000), 8000), 422, "upload: audio is silent"),
        (wav_bytes(np.full(8000 * 31, 0.1), 8000), 422, "over the 30 s limit"),
    ],
    ids=["empty", "not-audio", "silent", "too-long"],
)
def test_bad_uploads_get_a_4xx_with_a_clear_json_error(client, body, status, message):
    response = client.post("/api/predict", content=body)
    assert response.status_code == status and message in response.json()["error"]


def test_bad_multipart_upload_names_the_file(client):
    response = client.post("/api/predict", files={"file": ("notes.txt", b"hello", "text/plain")})
    assert response.status_code == 422 and response.json()["error"].startswith("notes.txt: not a readable")


def test_oversized_bodies_are_refused(predictor):
    small = TestClient(create_app(predictor, max_bytes=50_000))
    big = wav_bytes(TONE.repeat(4), 8000, subtype="FLOAT")  # ~64 kB
    assert small.post("/api/predict", content=big).status_code == 413
    assert small.post("/api/predict", files={"file": ("big.wav", big, "audio/wav")}).status_code == 413
    assert small.post("/api/predict", content=wav_bytes(TONE, 8000)).status_code == 200

    def chunked():  # no Content-Length: the cap must hold while streaming
        for _ in range(10):
            yield b"\0" * 10_000

    response = small.post("/api/predict", content=chunked())
    assert response.status_code == 413 and "limit" in response.json()["error"]


def post_in_chunks(app, headers: dict[str, str], chunks: Iterator[bytes]) -> tuple[int, dict]:
    """POST `chunks` to /api/predict straight through ASGI, one message each and no Content-Length,
    as a chunked upload arrives; the app pulls each chunk only when it reads on."""

    async def call() -> tuple[int, dict]:
        answer: dict = {"body": b""}
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/predict",
            "raw_path": b"/api/predict",
            "root_path": "",
            "query_string": b"",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 1234),
            "server": ("127.0.0.1", 80),
        }

        async def receive() -> dict:
            chunk = next(chunks, None)
            if chunk is None:
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        await app(scope, receive, send)
        return answer["status"], json.loads(answer["body"])

    return asyncio.run(call())


def test_a_chunked_multipart_upload_is_refused_while_it_streams(predictor):
    """No Content-Length and multipart: the cap must stop reading at the limit, not spool it all first."""
    boundary = "spokendigitsboundary"
    sent = 0

    def body() -> Iterator[bytes]:  # a 1 MB "file" in 1 kB chunks
        nonlocal sent
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        yield (head + "Content-Type: audio/wav\r\n\r\n").encode()
        for _ in range(1000):
            sent += 1
            yield b"\0" * 1000
        yield f"\r\n--{boundary}--\r\n".encode()

    app = create_app(predictor, max_bytes=20_000)
    status, answer = post_in_chunks(app, {"content-type": f"multipart/form-data; boundary={boundary}"}, body())
    assert status == 413 and sent <= 21  # it stopped reading at the 20 kB limit, not after the whole megabyte
    assert "over the 20000 bytes limit" in answer["error"]


def test_a_multipart_uploads_spooled_file_is_closed(predictor, monkeypatch):
    from starlette.datastructures import UploadFile

    closed: list[str | None] = []
    close = UploadFile.close

    async def recording_close(self: UploadFile) -> None:
        closed.append(self.filename)
        await close(self)

    monkeypatch.setattr(UploadFile, "close", recording_close)
    data = wav_bytes(TONE, 8000)
    response = TestClient(create_app(predictor)).post("/api/predict", files={"file": ("mine.wav", data, "audio/wav")})
    assert response.status_code == 200 and closed == ["mine.wav"]


def test_a_malformed_multipart_upload_is_a_400_with_a_json_error(client):
    response = client.post("/api/predict", content=b"--x\r\nnonsense", headers={"content-type": "multipart/form-data"})
    assert response.status_code == 400 and "not a valid multipart upload" in response.json()["error"]


@pytest.fixture(scope="module")
def exported(predictor, tmp_path_factory) -> Path:
    """The `predictor` fixture's model exported to ONNX."""
    from spoken_digits.apps.export import export_onnx

    folder = tmp_path_factory.mktemp("onnx")
    checkpoint.save(folder / "model.pt", predictor.checkpoint)
    export_onnx(folder / "model.pt", folder / "model.onnx")
    return folder / "model.onnx"


def test_an_exported_onnx_model_is_served_like_its_checkpoint(exported, client):
    onnx = TestClient(create_app(OnnxPredictor(exported)))
    clip = wav_bytes(TONE, 8000)
    answer, reference = (c.post("/api/predict", content=clip) for c in (onnx, client))
    assert answer.status_code == 200, answer.text
    answer, reference = answer.json(), reference.json()
    assert answer["digit"] == reference["digit"]
    assert answer["probabilities"] == pytest.approx(reference["probabilities"], abs=1e-5)
    assert "features" not in answer and "features" in reference  # an ONNX graph does not expose its input
    model = onnx.get("/api/model").json()
    assert model["classes"] == [str(d) for d in range(10)] and model["config"]["audio"]["sr"] == 8000


def test_clipped_and_long_clips_get_warnings(client):
    loud = np.clip(4 * np.sin(2 * np.pi * 300 * np.arange(4000) / 8000), -1, 1)
    assert "clipped" in client.post("/api/predict", content=wav_bytes(loud, 8000)).json()["warnings"][0]
    long = 0.3 * np.sin(2 * np.pi * 300 * np.arange(16000) / 8000)
    assert "cut off" in client.post("/api/predict", content=wav_bytes(long, 8000)).json()["warnings"][0]


class LiveServer:
    """uvicorn on 127.0.0.1 in a background thread, stopped at the end."""

    def __init__(self, app) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def fake_microphone(wav: Path) -> list[str]:
    """Chromium flags: a microphone that plays `wav` in a loop, allowed without asking."""
    return [
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ]


@pytest.fixture(scope="module")
def fsdd_model(trained_on_fsdd) -> Predictor:
    return Predictor.from_file(trained_on_fsdd / "model.pt")


@pytest.mark.fsdd
def test_concurrent_requests_each_get_the_answer_for_their_own_clip(fsdd_model, fsdd_root):
    """One test-split clip per digit (six voices), 100 requests 8 at a time against 127.0.0.1: each
    answer equals that clip's answer when sent alone, and those are mostly the spoken digit."""
    import httpx

    speakers = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
    clips = {
        digit: (fsdd_root / "recordings" / f"{digit}_{speakers[digit % 6]}_{digit % 5}.wav").read_bytes()
        for digit in range(10)  # takes 0-4 are FSDD's test split: never trained on
    }
    order = [digit for digit in range(10) for _ in range(10)]
    random.Random(0).shuffle(order)

    async def load(url: str) -> tuple[dict[int, dict], list[tuple[int, dict]], list[float]]:
        gate, answers, times = asyncio.Semaphore(8), [], []
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            alone = {d: (await http.post("/api/predict", content=clip)).json() for d, clip in clips.items()}

            async def one(digit: int) -> None:
                async with gate:
                    started = time.perf_counter()
                    response = await http.post("/api/predict", content=clips[digit])
                    times.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
                    answers.append((digit, response.json()))

            await asyncio.gather(*(one(d) for d in order))
        return alone, answers, times

    with LiveServer(create_app(fsdd_model)) as url:
        alone, answers, times = asyncio.run(load(url))
    right = [d for d, answer in alone.items() if answer["digit"] == str(d)]
    assert len(right) >= 8, {d: a["digit"] for d, a in alone.items()}
    assert len(answers) == len(order)
    for digit, answer in answers:
        assert answer["digit"] == alone[digit]["digit"], digit
        assert answer["probabilities"] == pytest.approx(alone[digit]["probabilities"], abs=1e-5)
    q = statistics.quantiles([1000 * t for t in times], n=100)
    print(f"\n{len(order)} requests, 8 concurrent: p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms, p99 {q[98]:.1f} ms")


def test_the_page_shows_an_onnx_models_answer_without_a_spectrogram(exported, tmp_path):
    """An ONNX model's answers carry no features: the page shows the digit and hides the picture."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    clip = tmp_path / "tone.wav"
    clip.write_bytes(wav_bytes(TONE, 8000))
    with LiveServer(create_app(OnnxPredictor(exported))) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        page = browser.new_page()
        page.goto(url)
        page.set_input_files("#file", str(clip))
        page.wait_for_selector("#result:not([hidden])", timeout=30_000)
        page.wait_for_function("document.getElementById('status').textContent === ''")
        digit, error, meta = (page.text_content(f"#{name}") for name in ("digit", "error", "clip-meta"))
        canvas_hidden = page.is_hidden("#spectrogram")
        browser.close()
    assert error == "" and digit in {str(d) for d in range(10)}, error
    assert canvas_hidden and "RMS" in meta and "frames" not in meta


@pytest.mark.fsdd
def test_a_real_browser_records_a_digit_from_a_fake_microphone(fsdd_model, fsdd_root, tmp_path):
    """Chromium's fake microphone plays an FSDD recording; the page must show that digit."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    y, sr = sf.read(fsdd_root / "recordings" / "7_theo_3.wav")  # a test-split take
    mic = tmp_path / "mic.wav"  # the fake device loops its file: silence either side, one digit per loop
    sf.write(mic, np.concatenate([np.zeros(int(0.3 * sr)), y, np.zeros(2 * sr)]), sr, subtype="PCM_16")
    flags = fake_microphone(mic)
    app = create_app(fsdd_model)
    with LiveServer(app) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=flags, headless=True)
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone-sized screen
        page.goto(url)
        page.click("#record")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Recording')")
        page.wait_for_timeout(1500)
        page.click("#record")
        page.wait_for_selector("#result:not([hidden])", timeout=30_000)
        digit, error = page.text_content("#digit"), page.text_content("#error")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        if shot := os.environ.get("SPOKEN_DIGITS_SCREENSHOT"):  # to refresh the README picture
            shutil.copy(tmp_path / "page.png", shot)
        browser.close()
    assert error == "" and digit == "7", json.dumps({"digit": digit, "error": error})


@pytest.mark.fsdd
def test_the_default_model_answers_no_speech_for_noise_and_a_tone(fsdd_model):
    client = TestClient(create_app(fsdd_model))
    t = np.arange(16000) / 8000
    for y in (0.1 * np.random.default_rng(0).standard_normal(16000), 0.3 * np.sin(2 * np.pi * 440 * t)):
        response = client.post("/api/predict", content=wav_bytes(y, 8000))
        assert response.status_code == 422 and "no speech found" in response.json()["error"]


@pytest.mark.fsdd
def test_the_page_listens_continuously_and_shows_a_digit_string(fsdd_model, fsdd_root, tmp_path):
    """Chromium's fake microphone plays "seven three one" (test-split takes); in continuous mode the
    page shows the digits as they come over the WebSocket, and Clear empties it."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    from conftest import fsdd_string

    mic = tmp_path / "mic.wav"  # the fake device loops its file: 2 s of quiet before it starts again
    y = np.concatenate([fsdd_string(fsdd_root, "731", speaker="lucas"), np.zeros(2 * 8000, np.float32)])
    sf.write(mic, y, 8000, subtype="PCM_16")
    flags = fake_microphone(mic)
    with LiveServer(create_app(fsdd_model)) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=flags, headless=True)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(url)
        page.click("#listen")
        # the device may start before the socket opens, so the first loop can be cut: wait for a whole one
        page.wait_for_function("document.getElementById('live-text').textContent.includes('731')", timeout=40_000)
        heard, error = page.text_content("#live-text"), page.text_content("#error")
        page.click("#clear")
        cleared = page.text_content("#live-text")
        page.click("#listen")
        browser.close()
    assert error == "" and "731" in heard and len(heard) <= 6, json.dumps({"heard": heard, "error": error})
    assert cleared == ""


# --- live listening (WebSocket) limits -------------------------------------------------------------

SECOND = np.zeros(8000, "<f4").tobytes()  # one second of quiet at ?rate=8000


def limited(predictor, **limits) -> TestClient:
    """A test client whose app has these stream limits (StreamLimits fields)."""
    from spoken_digits.apps.limits import StreamLimits

    return TestClient(create_app(predictor, limits=StreamLimits(**limits)))


def closed(ws, timeout: float = 20) -> tuple[int, str]:
    """(code, reason) of the server's close, which must be its next message (within `timeout` s, so a
    server that never closes fails the test instead of hanging it)."""
    import anyio

    async def next_message() -> dict:
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()  # TestClient's receive, less its endless wait

    message = ws.portal.call(next_message)
    assert message["type"] == "websocket.close", message
    return message.get("code", 1000), message.get("reason", "")


class CountingListener:
    """Stands in for Listener: one word per fed frame; records the threads it runs on."""

    threads: ClassVar[list[str]] = []

    def __init__(self, predictor, sr: int) -> None:
        from spoken_digits.recognize.words import Word

        self.word, self.words, self.sr = Word, [], sr
        CountingListener.threads.append(threading.current_thread().name)

    def feed(self, chunk: np.ndarray) -> list:
        CountingListener.threads.append(threading.current_thread().name)
        n = len(self.words)
        self.words.append(self.word(str(n % 10), n, n + 0.5, 0.9))
        return self.words[-1:]

    def finish(self) -> list:
        return []

    def clear(self) -> None:
        self.words = []

    @property
    def text(self) -> str:
        return "".join(w.label for w in self.words)


@pytest.fixture
def counting(monkeypatch):
    CountingListener.threads = []
    monkeypatch.setattr("spoken_digits.apps.live.Listener", CountingListener)
    return CountingListener


def test_a_stream_from_another_origin_is_refused_unless_allowed(predictor):
    """Cross-site WebSocket hijacking: a page on another site must not stream to the local server."""
    client = TestClient(create_app(predictor))
    with client.websocket_connect("/api/listen?rate=8000", headers={"origin": "http://evil.example"}) as ws:
        ws.send_text(json.dumps({"type": "clear"}))
        code, reason = closed(ws)
    assert code == 1008 and "origin http://evil.example is not allowed" in reason and "--allow-origin" in reason
    for origin in ("http://testserver", "http://TESTSERVER:80"):  # the page's own origin (Host: testserver)
        with client.websocket_connect("/api/listen?rate=8000", headers={"origin": origin}) as ws:
            ws.send_text(json.dumps({"type": "clear"}))
            assert ws.receive_json() == {"type": "cleared", "text": ""}
    widened = limited(predictor, allow_origins=("http://evil.example",))
    with widened.websocket_connect("/api/listen?rate=8000", headers={"origin": "http://evil.example"}) as ws:
        ws.send_text(json.dumps({"type": "clear"}))
        assert ws.receive_json() == {"type": "cleared", "text": ""}


def test_streams_over_the_limit_are_told_to_come_back_later(predictor):
    client = limited(predictor, max_streams=1)
    with client.websocket_connect("/api/listen?rate=8000") as first:
        first.send_text(json.dumps({"type": "clear"}))
        assert first.receive_json()["type"] == "cleared"
        with client.websocket_connect("/api/listen?rate=8000") as second:
            code, reason = closed(second)
        assert code == 1013 and "1 stream" in reason and "--max-streams" in reason
    with client.websocket_connect("/api/listen?rate=8000") as again:  # the first one left: room again
        again.send_text(json.dumps({"type": "clear"}))
        assert again.receive_json()["type"] == "cleared"


def test_an_idle_stream_is_closed(predictor):
    with limited(predictor, idle_seconds=0.2).websocket_connect("/api/listen?rate=8000") as ws:
        ws.send_bytes(SECOND)
        code, reason = closed(ws)
    assert code == 1008 and "no audio for 0.2 s" in reason


@pytest.mark.parametrize("by", ["audio", "clock"])
def test_a_stream_ends_at_the_session_limit(predictor, by):
    client = limited(predictor, max_seconds=2.5 if by == "audio" else 0.3, idle_seconds=30)
    with client.websocket_connect("/api/listen?rate=8000") as ws:
        if by == "audio":  # audio faster than real time reaches the limit before the clock does
            for _ in range(3):
                ws.send_bytes(SECOND)
        code, reason = closed(ws)
    limit = "2.5" if by == "audio" else "0.3"
    assert code == 1008 and f"the {limit} s session limit" in reason


def test_words_come_one_by_one_without_the_whole_text_and_are_capped(predictor, counting):
    with limited(predictor, max_words=3).websocket_connect("/api/listen?rate=8000") as ws:
        ws.send_bytes(SECOND)
        ws.send_bytes(SECOND)
        word = {"probability": 0.9, "low_confidence": False}
        assert [ws.receive_json() for _ in range(2)] == [  # the word alone, no "text"
            {"type": "word", "word": {"digit": d, "start": t, "end": t + 0.5, **word}} for d, t in (("0", 0), ("1", 1))
        ]
        ws.send_text(json.dumps({"type": "clear"}))  # clearing empties what the stream keeps
        assert ws.receive_json()["type"] == "cleared"
        for _ in range(3):
            ws.send_bytes(SECOND)
        assert [ws.receive_json()["word"]["digit"] for _ in range(3)] == ["0", "1", "2"]
        code, reason = closed(ws)
    assert code == 1008 and "3 words" in reason and '"clear"' in reason


def test_a_streams_work_runs_in_its_own_threads_not_the_loop_or_the_shared_pool(predictor, counting):
    with limited(predictor).websocket_connect("/api/listen?rate=8000") as ws:
        ws.send_bytes(SECOND)
        ws.receive_json()
    assert len(counting.threads) == 2  # the Listener's creation (the detector's first load) and one frame
    assert all(name.startswith("spoken-digits-stream") for name in counting.threads), counting.threads


def test_serve_options_reach_the_app_and_uvicorn(monkeypatch, predictor):
    import uvicorn

    from spoken_digits.apps import serve as serving
    from spoken_digits.apps.cli import build_parser
    from spoken_digits.apps.limits import StreamLimits

    argv = ["serve", "m.pt", "--max-streams", "3", "--max-session", "60", "--max-words", "20", "--idle", "5"]
    args = build_parser().parse_args([*argv, "--allow-origin", "http://a.example", "--allow-origin", "http://b.example"])
    limits = StreamLimits.from_args(args)
    assert limits == StreamLimits(
        max_streams=3, max_seconds=60, max_words=20, idle_seconds=5,
        allow_origins=("http://a.example", "http://b.example"), workers=limits.workers,
    )  # fmt: skip
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    serving.serve(predictor, limits=limits)
    assert seen["ws_max_size"] <= 2 * serving.MAX_FRAME_BYTES  # a bigger frame is refused before it is buffered


def test_streams_wait_while_an_upload_is_answered(predictor, counting, monkeypatch):
    """Uploads first: a frame that arrives during an upload is heard once the upload is answered."""
    from spoken_digits.apps import serve as serving

    answering, release, order = threading.Event(), threading.Event(), []
    inspect = serving._inspect

    def slow_inspect(*args):
        answering.set()
        release.wait(timeout=20)
        order.append("upload")
        return inspect(*args)

    monkeypatch.setattr(serving, "_inspect", slow_inspect)
    feed = CountingListener.feed
    monkeypatch.setattr(CountingListener, "feed", lambda self, chunk: order.append("frame") or feed(self, chunk))
    client = TestClient(create_app(predictor))
    with client, client.websocket_connect("/api/listen?rate=8000") as ws:  # one event loop for both
        ws.send_text(json.dumps({"type": "clear"}))
        ws.receive_json()  # the stream is open
        upload = threading.Thread(target=lambda: client.post("/api/predict", content=wav_bytes(TONE, 8000)))
        upload.start()
        assert answering.wait(timeout=20)
        ws.send_bytes(SECOND)
        time.sleep(0.2)  # the frame has arrived, and waits (up to live.UPLOADS_FIRST s)
        release.set()
        ws.receive_json()
        upload.join(timeout=20)
    assert order == ["upload", "frame"]
