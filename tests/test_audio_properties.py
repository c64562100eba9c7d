"""Property-based tests: whatever bytes or audio a file holds, reading it gives a correct clip or a clear error."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spoken_digits.errors import AudioError
from spoken_digits.frontend.audio import MIN_SECONDS, read_audio
from spoken_digits.models import checkpoint
from spoken_digits.recognize.torchmodel import Predictor
from test_checkpoint import make_checkpoint

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def read_or_error(path: Path) -> np.ndarray | None:
    """read_audio's answer, asserting it is a valid clip or an AudioError that names the file."""
    try:
        y = read_audio(path, 8000, max_duration=30)
    except AudioError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and "\n" not in message
        return None
    assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all()
    assert len(y) >= MIN_SECONDS * 8000  # never shorter than a spoken digit can be
    return y


@SETTINGS
@given(data=st.binary(max_size=4096))
def test_random_bytes(tmp_path, data):
    path = tmp_path / "random.wav"
    path.write_bytes(data)
    read_or_error(path)


HEADERS = {  # real headers, to push random bytes past format detection
    "wav": lambda: _encoded(np.zeros(16), 8000, "WAV", "PCM_16"),
    "flac": lambda: _encoded(np.zeros(16), 8000, "FLAC", "PCM_16"),
    "ogg": lambda: _encoded(0.1 * np.ones(800), 8000, "OGG", "VORBIS"),
}


def _encoded(y: np.ndarray, sr: int, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, y, sr, format=fmt, subtype=subtype)
    return buffer.getvalue()


@SETTINGS
@given(kind=st.sampled_from(sorted(HEADERS)), cut=st.integers(0, 200), tail=st.binary(max_size=2048))
def test_real_headers_with_truncation_and_garbage(tmp_path, kind, cut, tail):
    head = HEADERS[kind]()
    path = tmp_path / f"mangled.{kind}"
    path.write_bytes(head[: max(0, len(head) - cut)] + tail)
    read_or_error(path)


@SETTINGS
@given(
    rate=st.integers(1, 400_000),
    channels=st.integers(1, 8),
    frames=st.integers(0, 3000),
    subtype=st.sampled_from(["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "PCM_U8"]),
    special=st.sampled_from([None, np.nan, np.inf, -np.inf]),
    scale=st.sampled_from([0.0, 1e-7, 0.3, 1.0]),
)
def test_any_rate_channels_length_and_sample_values(tmp_path, rate, channels, frames, subtype, special, scale):
    rng = np.random.default_rng(frames)
    data = scale * rng.uniform(-1, 1, (frames, channels))
    injected = special is not None and frames > 0 and subtype in ("FLOAT", "DOUBLE")  # PCM cannot hold NaN/Inf
    if injected:
        data[frames // 2, 0] = special
    path = tmp_path / "clip.wav"
    try:
        sf.write(path, data, rate, subtype=subtype)
    except (sf.LibsndfileError, ValueError, RuntimeError):
        return  # libsndfile cannot even write this combination
    y = read_or_error(path)
    if y is not None:  # a usable clip: resampled to 8 kHz with the right duration
        assert abs(len(y) - frames * 8000 / rate) <= 2 + 0.01 * len(y)
        assert rate >= 1000 and frames >= MIN_SECONDS * rate and scale > 0 and not injected


def test_one_sample_clip_is_refused(tmp_path):
    path = tmp_path / "one.wav"
    path.write_bytes(_encoded(np.array([0.5]), 8000, "WAV", "PCM_16"))
    with pytest.raises(AudioError, match=r"one\.wav: too short: 0\.000125 s of audio \(need at least 0\.1 s\)"):
        read_audio(path, 8000)


def test_memory_is_capped_by_channels_times_frames(tmp_path, monkeypatch):
    monkeypatch.setattr("spoken_digits.frontend.audio.MAX_SAMPLES", 8 * 4000 - 1)
    sf.write(tmp_path / "wide.wav", 0.1 * np.ones((4000, 8)), 8000)  # 0.5 s, but 8 channels
    with pytest.raises(AudioError, match="8 channels x 4000 frames is too much audio to read"):
        read_audio(tmp_path / "wide.wav", 8000)
    sf.write(tmp_path / "mono.wav", 0.1 * np.sin(2 * np.pi * 440 * np.arange(4000) / 8000), 8000)
    assert len(read_audio(tmp_path / "mono.wav", 8000)) == 4000


def test_an_hour_of_audio_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "hour.wav"
    with sf.SoundFile(path, "w", samplerate=1000, channels=1, subtype="PCM_U8") as f:
        block = np.full(60_000, 0.2)
        for _ in range(60):
            f.write(block)  # 60 minutes at 1 kHz
    started = time.perf_counter()
    with pytest.raises(AudioError, match=r"3600\.0 s of audio is over the 30 s limit"):
        read_audio(path, 8000)
    assert time.perf_counter() - started < 1.0  # decided from the header, nothing decoded


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.pt"
    checkpoint.save(path, make_checkpoint())
    return Predictor.from_file(path)


clip_bytes = st.one_of(
    st.binary(max_size=512),
    st.builds(
        lambda n, rate, ch: _encoded(0.3 * np.random.default_rng(n).uniform(-1, 1, (n, ch)), rate, "WAV", "PCM_16"),
        st.integers(1, 20_000),
        st.sampled_from([8000, 16000, 44100, 48000]),
        st.integers(1, 8),
    ),
)


@SETTINGS
@given(contents=st.lists(clip_bytes, min_size=1, max_size=6))
def test_predict_answers_every_file_in_order(tmp_path, predictor, contents):
    paths = []
    for i, data in enumerate(contents):
        paths.append(tmp_path / f"{i}.wav")
        paths[-1].write_bytes(data)
    results = predictor.predict_files(paths)
    assert [r.file for r in results] == [str(p) for p in paths]
    for r in results:
        if r.error is None:
            assert r.digit in predictor.classes and 0 < r.probability <= 1
            assert abs(sum(r.probabilities) - 1) < 1e-4 and r.probability == max(r.probabilities)
        else:
            assert r.error.startswith(f"{r.file}: ") and r.digit is None


def test_fuzz_harness_runs_clean(tmp_path):
    """A short run of the atheris harness (the long runs are in the README); it must find nothing."""
    pytest.importorskip("atheris")
    harness = Path(__file__).parent.parent / "fuzz" / "fuzz_audio.py"
    run = subprocess.run(
        [sys.executable, str(harness), "-runs=1000", "-seed=1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Done 1000 runs" in run.stderr
