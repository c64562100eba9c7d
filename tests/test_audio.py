"""Reading files of any common format and rate, trimming, fixing length, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import digit_tone
from spoken_digits.audio import batch, fix_length, load, read_audio, trim_silence
from spoken_digits.config import AudioConfig, Pad
from spoken_digits.errors import AudioError


def dominant_hz(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[spectrum.argmax()])


@pytest.mark.parametrize(
    ("ext", "subtype"),
    [
        ("wav", "PCM_16"),
        ("wav", "PCM_24"),
        ("wav", "PCM_32"),
        ("wav", "FLOAT"),
        ("wav", "PCM_U8"),
        ("flac", "PCM_16"),
        ("flac", "PCM_24"),
        ("ogg", "VORBIS"),
    ],
)
@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_reads_formats_and_rates_to_mono_8k(tmp_path, ext, subtype, rate):
    t = np.arange(int(0.5 * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, 0.5 * tone], axis=1)
    path = tmp_path / f"clip.{ext}"
    sf.write(path, stereo, rate, subtype=subtype)
    y = read_audio(path, 8000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 4000) <= 2
    assert abs(dominant_hz(y, 8000) - 440) < 5
    assert np.abs(y).max() == pytest.approx(0.375, rel=0.05)  # channels averaged


def test_eight_channels_are_mixed(tmp_path):
    data = np.zeros((4000, 8), dtype=np.float32)
    data[:, 3] = 0.8 * np.sin(2 * np.pi * 300 * np.arange(4000) / 8000)
    sf.write(tmp_path / "multi.wav", data, 8000)
    y = read_audio(tmp_path / "multi.wav", 8000)
    assert np.abs(y).max() == pytest.approx(0.1, rel=0.02)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "file is empty"),
        (lambda p: p.write_bytes(b"this is not audio at all" * 10), "not a readable audio file"),
        (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "not a readable audio file"),
        (lambda p: sf.write(p, np.zeros(8000), 8000), r"silent \(digital silence\)"),
        (lambda p: sf.write(p, np.full(8000, 1e-6), 8000, subtype="FLOAT"), r"silent \(peak -120 dBFS\)"),
        (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2] * 100), 8000, subtype="FLOAT"), "NaN or infinite"),
        (lambda p: sf.write(p, np.full(8000 * 31, 0.1), 8000), "over the 30 s limit"),
        (lambda p: sf.write(p, np.full(100, 0.1), 8), "unusable sample rate 8 Hz"),
        (lambda p: sf.write(p, np.zeros((0, 1)), 8000), "contains no audio samples"),
        (lambda p: sf.write(p, np.array([0.5]), 16001), "too short: 1 sample"),
    ],
    ids=[
        "missing",
        "empty",
        "text",
        "truncated-header",
        "digital-silence",
        "near-silence",
        "nan",
        "too-long",
        "absurd-rate",
        "zero-frames",
        "shorter-than-one-output-sample",
    ],
)
def test_bad_files_get_one_clear_error_naming_the_file(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as info:
        read_audio(path, 8000)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_directory_is_rejected(tmp_path):
    with pytest.raises(AudioError, match="not a regular file"):
        read_audio(tmp_path, 8000)


def test_trim_silence_keeps_the_sound_and_drops_quiet_edges():
    sound = 0.5 * np.sin(2 * np.pi * 440 * np.arange(4000) / 8000)  # 0.5 s at a steady level
    padded = np.concatenate([np.zeros(8000), sound, 1e-5 * np.ones(4000)]).astype(np.float32)
    trimmed = trim_silence(padded, 8000, 40)
    assert 0 <= len(trimmed) - len(sound) <= 400  # at most one 25 ms analysis frame at each edge
    assert np.abs(trimmed).max() == np.abs(padded).max()
    assert len(trim_silence(padded, 8000, 200)) > len(padded) - 300  # a huge threshold keeps nearly all


def test_fix_length_pads_and_cuts_at_the_end():
    y = np.arange(1, 6, dtype=np.float32)
    assert fix_length(y, 3).tolist() == [1, 2, 3]
    assert fix_length(y, 7).tolist() == [1, 2, 3, 4, 5, 0, 0]
    assert fix_length(y, 7, pad=Pad.START).tolist() == [0, 0, 1, 2, 3, 4, 5]
    assert fix_length(y, 3, pad=Pad.START).tolist() == [1, 2, 3]


def test_load_applies_trim_then_fixed_length(tmp_path):
    y = np.concatenate([np.zeros(8000), digit_tone(5, seed=2)]).astype(np.float32)
    sf.write(tmp_path / "late.wav", y, 8000)
    kept = load(tmp_path / "late.wav", AudioConfig(duration=0.5, trim_db=40))
    cropped = load(tmp_path / "late.wav", AudioConfig(duration=0.5, trim_db=None))
    assert len(kept) == len(cropped) == 4000
    assert np.abs(kept).max() > 0.3 and np.abs(cropped).max() == 0  # without trimming the crop is silence
    assert len(load(tmp_path / "late.wav", AudioConfig(duration=None))) == len(y)


def test_batch_pads_with_zeros_and_reports_lengths():
    x, lengths = batch([np.ones(3, np.float32), np.ones(5, np.float32)])
    assert x.shape == (2, 5) and lengths.tolist() == [3, 5]
    assert x[0, 3:].abs().sum() == 0
    with pytest.raises(AudioError, match="no audio"):
        batch([])
