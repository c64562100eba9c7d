"""Reading files of any common format and rate, trimming, fixing length, and clear errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import soxr

from conftest import digit_voice
from spoken_digits.config import AudioConfig, Pad
from spoken_digits.errors import AudioError
from spoken_digits.frontend.audio import batch, check_clip, fix_length, load, read_audio, speech_share, trim_silence
from spoken_digits.models import checkpoint
from spoken_digits.recognize.torchmodel import Predictor
from test_checkpoint import make_checkpoint


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
        (lambda p: sf.write(p, np.array([0.5]), 16001), r"too short: 6\.25e-05 s of audio \(need at least 0\.1 s\)"),
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
    y = np.concatenate([np.zeros(8000), digit_voice(5, seed=2)]).astype(np.float32)
    sf.write(tmp_path / "late.wav", y, 8000)
    kept = load(tmp_path / "late.wav", AudioConfig(duration=0.5, trim_db=40))
    cropped = load(tmp_path / "late.wav", AudioConfig(duration=0.5, trim_db=None))
    assert len(kept) == len(cropped) == 4000
    assert np.abs(kept).max() > 0.3 and np.abs(cropped).max() == 0  # without trimming the crop is silence
    assert len(load(tmp_path / "late.wav", AudioConfig(duration=None, trim_db=None))) == len(y)  # both off


def test_batch_pads_with_zeros_and_reports_lengths():
    x, lengths = batch([np.ones(3, np.float32), np.ones(5, np.float32)])
    assert x.shape == (2, 5) and lengths.tolist() == [3, 5]
    assert np.abs(x[0, 3:]).sum() == 0 and x.dtype == np.float32 and lengths.dtype == np.int64
    with pytest.raises(AudioError, match="no audio"):
        batch([])


def tone(hz: float, seconds: float, *, sr: int = 8000, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * hz * np.arange(round(seconds * sr)) / sr)


def quiet_noise(seconds: float, db_below: float, *, sr: int = 8000) -> np.ndarray:
    """Noise `db_below` dB under the RMS of tone(..., amplitude=0.5)."""
    level = 0.5 / np.sqrt(2) * 10 ** (-db_below / 20)
    return level * np.random.default_rng(3).standard_normal(round(seconds * sr))


@pytest.mark.parametrize(
    ("trim_db", "clip", "expected"),
    [  # each clip is one where trimming at 40 dB (the old, fixed measure) gives the other answer
        (None, lambda: np.concatenate([np.zeros(4800), tone(440, 0.3), np.zeros(800)]), "1.0 s of sound"),
        (60.0, lambda: np.concatenate([tone(440, 0.3), quiet_noise(0.6, 55)]), "0.9 s of sound"),
        (20.0, lambda: np.concatenate([tone(440, 0.3), quiet_noise(0.6, 30)]), None),
    ],
    ids=["no-trim-measures-the-file", "trim-60-keeps-the-quiet-tail", "trim-20-drops-the-tail"],
)
def test_the_crop_warning_measures_what_the_model_hears(trim_db, clip, expected):
    cfg = AudioConfig(duration=0.5, trim_db=trim_db)
    notes = [n for n in check_clip(clip().astype(np.float32), cfg) if "the model hears only" in n]
    if expected is None:
        assert notes == []
    else:
        where = "of the file" if trim_db is None else "after trimming silence"
        assert notes == [f"{expected}, but the model hears only the first 0.5 s {where}: the rest is cut off"]


def hum(seconds: float = 4.0, *, sr: int = 8000) -> np.ndarray:
    """Mains hum at a normal level: 50 Hz and its first harmonics, with a little hiss."""
    y = tone(50, seconds, sr=sr, amplitude=0.3) + tone(100, seconds, sr=sr, amplitude=0.1)
    y += tone(150, seconds, sr=sr, amplitude=0.05)
    return y + 0.001 * np.random.default_rng(0).standard_normal(len(y))


NO_DIGIT = {  # audio that cannot hold a spoken digit: (samples, rate) and the reason given
    "one-sample": ((np.array([0.5]), 8000), r"too short: 0\.000125 s of audio \(need at least 0\.1 s\)"),
    "50-hz-hum": ((hum(), 8000), r"no speech found \(only 0\.0\d*% of the sound lies between 250 and 4000 Hz"),
    "50-hz-hum-at-44k": ((hum(sr=44100), 44100), "no speech found"),
    "dc-offset": ((np.full(16000, 0.2), 8000), "no speech found"),
    "dc-offset-with-dither": ((0.2 + 1e-4 * np.random.default_rng(1).standard_normal(16000), 8000), "no speech found"),
    "120-hz-tone": ((tone(120, 2.0), 8000), "no speech found"),
}


@pytest.mark.parametrize("case", list(NO_DIGIT))
def test_audio_too_short_or_without_speech_is_refused(tmp_path, case):
    (y, rate), message = NO_DIGIT[case]
    path = tmp_path / f"{case}.wav"
    sf.write(path, y, rate, subtype="PCM_16")
    with pytest.raises(AudioError, match=message) as info:
        read_audio(path, 8000)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_one_sample_message_in_full(tmp_path):
    sf.write(tmp_path / "one.wav", np.array([0.5]), 8000)
    with pytest.raises(AudioError) as info:
        read_audio(tmp_path / "one.wav", 8000)
    assert str(info.value) == f"{tmp_path / 'one.wav'}: too short: 0.000125 s of audio (need at least 0.1 s)"


def test_the_shortest_accepted_clip_is_a_tenth_of_a_second(tmp_path):
    sf.write(tmp_path / "ok.wav", tone(440, 0.1), 8000)
    assert len(read_audio(tmp_path / "ok.wav", 8000)) == 800
    sf.write(tmp_path / "short.wav", tone(440, 0.1)[:-1], 8000)
    with pytest.raises(AudioError, match=r"too short: 0\.0999 s"):
        read_audio(tmp_path / "short.wav", 8000)


def test_speech_over_a_hum_is_kept(tmp_path):
    """Only almost-no-speech is refused: a digit with a twentieth of the energy of the hum under it passes."""
    y = hum(1.0)
    y[1000 : 1000 + len(digit_voice(4))] += 0.8 * digit_voice(4)
    assert 0.01 < speech_share(y, 8000) < 0.05
    sf.write(tmp_path / "hummy.wav", y, 8000)
    assert len(read_audio(tmp_path / "hummy.wav", 8000)) == 8000


@pytest.mark.fsdd
def test_no_fsdd_recording_is_refused(fsdd_root):
    """The training corpus loses no clip to the length and no-speech checks (3,000 files)."""
    files = sorted((fsdd_root / "recordings").glob("*.wav"))
    refused = []
    for f in files:
        try:
            read_audio(f, 8000)
        except AudioError as exc:
            refused.append(str(exc))
    assert len(files) >= 3000 and refused == []


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.pt"
    checkpoint.save(path, make_checkpoint())
    return Predictor.from_file(path)


def test_predict_files_answers_no_digit_for_a_hum_and_answers_the_rest(tmp_path, predictor):
    files = [tmp_path / n for n in ("digit.wav", "hum.wav", "click.wav", "dc.wav")]
    sf.write(files[0], digit_voice(3), 8000)
    sf.write(files[1], hum(), 8000)
    sf.write(files[2], np.array([0.5]), 8000)
    sf.write(files[3], np.full(8000, 0.3), 8000)
    first, *bad = predictor.predict_files(files)
    assert first.error is None and first.digit in predictor.classes
    assert [r.digit for r in bad] == [None, None, None]
    assert "no speech found" in bad[0].error and "too short" in bad[1].error and "no speech found" in bad[2].error


@pytest.mark.parametrize(
    ("waves", "message"),
    [
        ([digit_voice(3), hum()], r"waves\[1\]: no speech found"),
        ([digit_voice(3), digit_voice(5), np.array([0.5])], r"waves\[2\]: too short: 0\.000125 s"),
        ([np.full(8000, 0.2)], r"waves\[0\]: no speech found"),
        ([np.zeros(8000)], r"waves\[0\]: audio is silent"),
        ([np.array([0.1, np.nan] * 4000)], r"waves\[0\]: contains NaN or infinite samples"),
    ],
    ids=["hum", "one-sample", "dc", "silence", "nan"],
)
def test_probabilities_refuse_arrays_without_speech_naming_the_index(predictor, waves, message):
    with pytest.raises(AudioError, match=message):
        predictor.probabilities(waves)


def test_inspect_refuses_a_hum(predictor):
    with pytest.raises(AudioError, match="waveform: no speech found"):
        predictor.inspect(hum())
    assert predictor.inspect(digit_voice(3)).probabilities.shape == (10,)


def many_channel_flac(seconds: float, rate: int = 192_000, channels: int = 5) -> bytes:
    """A 440 Hz tone as a FLAC with many channels at a high rate: small to upload, large to decode."""
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", rate, channels, format="FLAC", subtype="PCM_16") as f:
        for start in range(0, round(seconds * rate), rate // 4):  # written in blocks: the test stays small too
            t = (start + np.arange(rate // 4)) / rate
            f.write(np.repeat(0.3 * np.sin(2 * np.pi * 440 * t)[:, None], channels, axis=1))
    return buffer.getvalue()


def test_a_high_rate_many_channel_upload_decodes_in_bounded_memory():
    """4 s at 192 kHz in 5 channels is 15 MB of float32 decoded whole; read in blocks, downmixed and
    resampled as it goes, the decode needs a small part of that (the review saw 153 MB for 30 s)."""
    import tracemalloc

    from spoken_digits.frontend.audio import read_audio_bytes

    data = many_channel_flac(4.0)
    tracemalloc.start()
    try:
        y = read_audio_bytes(data, 8000, name="tone.flac")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4e6, f"{peak / 1e6:.1f} MB"
    assert y.dtype == np.float32 and len(y) == 32_000 and dominant_hz(y, 8000) == pytest.approx(440, abs=1)
    whole = sf.read(io.BytesIO(data), dtype="float32")[0].mean(axis=1, dtype=np.float32)
    reference = soxr.resample(whole, 192_000, 8000, quality="HQ")  # the whole file at once, as before
    assert np.abs(y - reference).max() < 1e-4


def test_a_file_longer_than_its_header_says_is_refused_at_the_limit(monkeypatch):
    """The decode stops at max_duration even when the header's frame count is wrong (it is only read)."""
    from spoken_digits.frontend import audio

    data = many_channel_flac(3.0, rate=48_000, channels=2)
    frames = sf.SoundFile.frames
    monkeypatch.setattr(sf.SoundFile, "frames", property(lambda f: frames.fget(f) // 10))  # a header that lies
    with pytest.raises(AudioError, match=r"^long.flac: more than 2 s of audio is over the 2 s limit$"):
        audio.read_audio_bytes(data, 8000, name="long.flac", max_duration=2.0)
