"""The web demo: API behaviour (test client), a bounded load test, and a real browser with a fake microphone."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import socket
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from spoken_digits import checkpoint
from spoken_digits.predict import Predictor
from spoken_digits.serve import create_app
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


def test_bounded_load_has_no_errors(predictor):
    """200 requests, 8 at a time, against 127.0.0.1 only; prints latency percentiles."""
    import httpx

    body = wav_bytes(TONE, 8000)

    async def load(url: str) -> list[float]:
        gate, times = asyncio.Semaphore(8), []
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def one() -> None:
                async with gate:
                    started = time.perf_counter()
                    response = await http.post("/api/predict", content=body)
                    assert response.status_code == 200, response.text
                    times.append(time.perf_counter() - started)

            await asyncio.gather(*(one() for _ in range(200)))
        return times

    with LiveServer(create_app(predictor)) as url:
        times = asyncio.run(load(url))
    q = statistics.quantiles([1000 * t for t in times], n=100)
    print(f"\n200 requests, 8 concurrent: p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms, p99 {q[98]:.1f} ms")
    assert len(times) == 200


@pytest.mark.fsdd
def test_a_real_browser_records_a_digit_from_a_fake_microphone(fsdd_root, tmp_path):
    """Chromium's fake microphone plays an FSDD recording; the page must show that digit."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    from spoken_digits.config import preset
    from spoken_digits.experiment import train_run

    train_run(preset("default"), tmp_path / "model", data=fsdd_root, download=False)
    y, sr = sf.read(fsdd_root / "recordings" / "7_theo_3.wav")  # a test-split take
    mic = tmp_path / "mic.wav"  # the fake device loops its file: silence either side, one digit per loop
    sf.write(mic, np.concatenate([np.zeros(int(0.3 * sr)), y, np.zeros(2 * sr)]), sr, subtype="PCM_16")
    flags = [
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ]
    app = create_app(Predictor.from_file(tmp_path / "model" / "model.pt"))
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
