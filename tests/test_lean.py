"""The lean runtime: predict, listen, serve and the Python API in a fresh venv without torch, on the packaged
model, giving the answers the full install gives."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import soxr
from benchmarks.lean import lean_venv

from conftest import fsdd_string, voice_string
from spoken_digits.apps.webexport import ORT_FILES
from spoken_digits.recognize.files import transcribe_files
from spoken_digits.recognize.load import load_predictor

TRAIN_ONLY = ("torch", "matplotlib", "onnx", "livekit", "pyroomacoustics", "silero_vad", "scipy")


@pytest.fixture(scope="module")
def lean(tmp_path_factory) -> Path:
    """The bin folder of a fresh venv holding spoken-digits[web] and its dependencies, no torch."""
    return lean_venv(tmp_path_factory.mktemp("lean") / "venv", "[web]")


def run(lean: Path, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(lean / args[0]), *args[1:]], capture_output=True, text=True, env=env, **kwargs)


@pytest.fixture(scope="module")
def recordings(fsdd_root, tmp_path_factory) -> list[Path]:
    """Ten official test clips of four speakers, one per digit, and two digit strings (8 kHz and 44.1 kHz)."""
    folder = tmp_path_factory.mktemp("lean-audio")
    speakers = ("george", "jackson", "lucas", "theo")
    clips = [fsdd_root / "recordings" / f"{d}_{speakers[d % 4]}_{d % 5}.wav" for d in range(10)]
    sf.write(folder / "string.wav", fsdd_string(fsdd_root, "4159", speaker="nicolas"), 8000)
    y = fsdd_string(fsdd_root, "720", speaker="yweweler")
    sf.write(folder / "string44k.flac", soxr.resample(y, 8000, 44100), 44100)
    return [*clips, folder / "string.wav", folder / "string44k.flac"]


def test_recognising_and_exporting_a_page_never_import_torch(tmp_path):
    """In this (full) install too: predict, listen and export --web with the packaged model leave torch out
    of the process, so the lean install's commands can never come to need it unnoticed."""
    wave = tmp_path / "two.wav"
    sf.write(wave, voice_string("27"), 8000)
    dist = tmp_path / "dist"
    dist.mkdir()
    for name in ORT_FILES:
        (dist / name).write_bytes(b"stand-in")
    code = "import sys; from spoken_digits.apps.cli import main; main(sys.argv[1:]); print('torch' in sys.modules)"
    for argv in (
        ["predict", str(wave)],
        ["predict", str(wave), "--single", "--device", "cuda"],  # refused for ONNX before torch is asked
        ["listen", "--file", str(wave)],
        ["export", "--web", str(tmp_path / "page"), "--ort-web", str(dist)],
    ):
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
        assert done.stdout.split()[-1] == "False", (argv, done.stdout, done.stderr)
    assert (tmp_path / "page" / "model.onnx").is_file()


def test_the_lean_install_holds_no_training_package(lean):
    code = f"import importlib.util as u; print([m for m in {TRAIN_ONLY!r} if u.find_spec(m)])"
    assert run(lean, "python", "-c", code, check=True).stdout.strip() == "[]"


@pytest.mark.fsdd
def test_predict_with_the_packaged_model_equals_the_full_install(lean, recordings):
    lean_answers = json.loads(run(lean, "spoken-digits", "predict", *map(str, recordings), "--json", check=True).stdout)
    full = transcribe_files(load_predictor(), recordings)  # this venv: torch loaded, the same packaged graph
    assert [a["text"] for a in lean_answers] == [r.transcript.text for r in full]
    for a, r in zip(lean_answers, full, strict=True):
        got = [w["probability"] for w in a["words"]]
        np.testing.assert_allclose(got, [w.probability for w in r.transcript.words], atol=6e-5)  # JSON: 4 places
    texts = [a["text"] for a in lean_answers]
    assert sum(t == str(d) for d, t in enumerate(texts[:10])) >= 9, texts
    assert texts[10:] == ["4159", "720"]


@pytest.mark.fsdd
def test_listen_and_the_python_api_without_torch(lean, recordings):
    listened = run(lean, "spoken-digits", "listen", "--file", str(recordings[10]), check=True)
    assert listened.stdout.strip().endswith("heard: 4159")
    code = (
        "import sys, soundfile as sf, soxr\n"
        "from spoken_digits.recognize.load import load_predictor\n"
        "from spoken_digits.recognize.strings import transcribe\n"
        "from spoken_digits.recognize.stream import Listener\n"
        "p = load_predictor()\n"
        "y, sr = sf.read(sys.argv[1], dtype='float32')\n"
        "listener = Listener(p, sr)  # any rate, fed in 0.2 s chunks\n"
        "words = [w for k in range(0, len(y), 1600) for w in listener.feed(y[k : k + 1600])] + listener.finish()\n"
        "at_model_rate = [soxr.resample(y, sr, p.audio_cfg.sr), soxr.resample(*sf.read(sys.argv[2]), p.audio_cfg.sr)]\n"
        "heard = transcribe(p, at_model_rate)\n"
        "print(''.join(w.label for w in words), heard[0].text, p.probabilities(at_model_rate[1:]).argmax())\n"
        "print('torch' in sys.modules)\n"
    )
    out = run(lean, "python", "-c", code, str(recordings[10]), str(recordings[3]), check=True).stdout.split()
    assert out == ["4159", "4159", "3", "False"]


@pytest.mark.fsdd
def test_serve_without_torch(lean, recordings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    server = subprocess.Popen(
        [str(lean / "spoken-digits"), "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        answer = httpx.post(f"{url}/api/predict", content=recordings[7].read_bytes()).json()
        assert answer["digit"] == "7", answer
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_commands_that_need_torch_name_the_extra(lean, tmp_path):
    trained = run(lean, "spoken-digits", "train", "--out", str(tmp_path / "run"))
    assert trained.returncode == 2 and "pip install 'spoken-digits[train]'" in trained.stderr
    (tmp_path / "model.pt").write_bytes(b"not used")
    (tmp_path / "a.wav").write_bytes(b"not used")
    checkpoint = run(lean, "spoken-digits", "predict", str(tmp_path / "model.pt"), str(tmp_path / "a.wav"))
    assert checkpoint.returncode == 2 and "export" in checkpoint.stderr and "needs torch" in checkpoint.stderr
