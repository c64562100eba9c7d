"""Audio in: read any file soundfile can, mix to mono, resample (soxr), find the word, fix length.

Every problem with a file is raised as `AudioError` with the file's name and the problem in one line.
Audio that cannot hold a spoken digit (too short, silent, no energy where speech is) is refused
here, for files and (through `require_speech`) for arrays, so no model ever labels a hum.
"""

from __future__ import annotations

import io
import math
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from spoken_digits.config import AudioConfig, Pad
from spoken_digits.errors import AudioError
from spoken_digits.frontend import endpoint

SILENCE_PEAK = 1e-4  # a clip whose loudest sample is below -80 dBFS is treated as silent
MIN_RATE = 1000  # Hz; lower rates cannot carry speech and are almost certainly a broken header
MAX_SAMPLES = 2**25  # frames x channels decoded at most (128 MB as float32), whatever the header claims
READ_BLOCK = 16_384  # frames decoded at a time (1.3 MB of float32 for 20 channels)
# No spoken digit is shorter: FSDD's shortest is 0.14 s (a "six"); 0.1 s is also under 10 frames of
# a 25 ms / 10 ms analysis, too little for any model to tell ten words apart.
MIN_SECONDS = 0.1
SPEECH_BAND = (250.0, 4000.0)  # Hz: the formants that tell digits apart lie here (capped at Nyquist)
# Least share of a clip's energy (DC included) inside SPEECH_BAND. Over all 3,000 FSDD recordings the
# lowest share is 0.16 (3_nicolas_38, which has a DC offset) and the median 0.85; a 50 Hz hum, a DC
# offset or a tone under 250 Hz has ~0. 0.01 leaves a 16x margin below FSDD, and speech with a
# twentieth of the energy of a hum under it still passes: a floor, not a voice-activity detector.
MIN_SPEECH_SHARE = 0.01
# File suffixes read as audio: what libsndfile reads, plus Ogg Opus's usual names.
AUDIO_SUFFIXES = frozenset({f".{ext.lower()}" for ext in sf.available_formats()} | {".oga", ".opus"})


def read_audio(path: str | os.PathLike[str], sr: int, *, max_duration: float = 30.0) -> np.ndarray:
    """Read `path` as float32 mono at `sr` Hz, shape (samples,).

    Raises AudioError for a missing, empty, unreadable, over-long, too short (< MIN_SECONDS),
    non-finite or silent file, and for one without speech-band energy (a hum, a DC offset).
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    if not stat.S_ISREG(info.st_mode):
        raise AudioError(f"{path}: not a regular file")
    if info.st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    return _decode(path, str(path), sr, max_duration)


def read_audio_bytes(data: bytes, sr: int, *, name: str = "upload", max_duration: float = 30.0) -> np.ndarray:
    """`read_audio` for the bytes of an audio file (an upload); errors name it `name`."""
    if not data:
        raise AudioError(f"{name}: file is empty (0 bytes)")
    return _decode(io.BytesIO(data), name, sr, max_duration)


def _decode(source: Path | BinaryIO, name: str, sr: int, max_duration: float) -> np.ndarray:
    """Decode, check and convert one audio file (see read_audio); `name` labels every error.

    Read in blocks, each mixed to mono and resampled to `sr` as it comes, so the memory needed follows
    the result (at `sr`, mono), not the file's rate and channels: a small upload cannot decode to a
    large buffer. The decode also stops at `max_duration` when the header's frame count is wrong.
    """
    try:
        with sf.SoundFile(source) as f:
            rate, frames, channels = f.samplerate, f.frames, f.channels
            if rate < MIN_RATE:
                raise AudioError(f"{name}: unusable sample rate {rate} Hz (need >= {MIN_RATE} Hz)")
            if frames > max_duration * rate:
                raise AudioError(f"{name}: {frames / rate:.1f} s of audio is over the {max_duration:g} s limit")
            if frames * channels > MAX_SAMPLES:
                raise AudioError(
                    f"{name}: {channels} channels x {frames} frames is too much audio to read "
                    f"(limit {MAX_SAMPLES} samples)"
                )
            mono, n, peak = _read_mono(f, name, sr, math.floor(max_duration * rate))
    except sf.LibsndfileError as exc:
        raise AudioError(f"{name}: not a readable audio file ({exc.error_string})") from None
    except (RuntimeError, TypeError, ValueError) as exc:  # soundfile's other ways to reject a file
        raise AudioError(f"{name}: not a readable audio file ({exc})") from None
    if n == 0:
        raise AudioError(f"{name}: contains no audio samples")
    _check_length(n, rate, name)  # the file's own duration, before resampling
    _check_peak(peak, name)
    _check_speech_band(mono, sr, name)  # what the model will hear, after resampling
    return mono


def _read_mono(f: sf.SoundFile, name: str, sr: int, max_frames: int) -> tuple[np.ndarray, int, float]:
    """(mono audio at `sr`, frames read, peak of the mono mix) of an open file, read a block at a time.

    Raises AudioError for non-finite samples, and once more than `max_frames` frames come.
    """
    resampler = None if f.samplerate == sr else soxr.ResampleStream(f.samplerate, sr, 1, quality="HQ")
    block = np.empty((READ_BLOCK, f.channels), np.float32)  # (frames, channels), reused for every block
    parts, n, peak = [], 0, 0.0
    while True:
        got = f.read(out=block, dtype="float32", always_2d=True)  # a view of `block`: no new buffer
        last = len(got) < READ_BLOCK
        n += len(got)
        if n > max_frames:
            limit = max_frames / f.samplerate
            raise AudioError(f"{name}: more than {limit:g} s of audio is over the {limit:g} s limit")
        _check_finite(got, name)
        mono = got[:, 0].copy() if f.channels == 1 else got.mean(axis=1, dtype=np.float32)
        peak = max(peak, float(np.abs(mono).max(initial=0.0)))
        parts.append(mono if resampler is None else resampler.resample_chunk(mono, last=last))
        if last:
            return np.concatenate(parts).astype(np.float32, copy=False), n, peak


def require_speech(y: np.ndarray, sr: int, *, name: str) -> None:
    """Raise AudioError (labelled `name`) unless mono `y` at `sr` Hz could hold a spoken digit.

    The checks `read_audio` makes on a file's content, for waveforms handed over as arrays.
    """
    _check_finite(y, name)
    _check_length(len(y), sr, name)
    _check_level(y, name)
    _check_speech_band(y, sr, name)


def speech_share(y: np.ndarray, sr: int) -> float:
    """Share of the energy of `y` (DC included) between 250 Hz and min(4000 Hz, Nyquist); 0 for silence."""
    power = np.abs(np.fft.rfft(np.asarray(y, dtype=np.float64))) ** 2  # (len(y) // 2 + 1,)
    hz = np.fft.rfftfreq(len(y), 1 / sr)
    low, high = SPEECH_BAND[0], min(SPEECH_BAND[1], sr / 2)
    total = float(power.sum())
    return float(power[(hz >= low) & (hz <= high)].sum()) / total if total > 0 else 0.0


def _check_finite(y: np.ndarray, name: str) -> None:
    if not np.isfinite(y).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")


def _check_length(n: int, rate: int, name: str) -> None:
    if n / rate < MIN_SECONDS:
        raise AudioError(f"{name}: too short: {n / rate:.3g} s of audio (need at least {MIN_SECONDS:g} s)")


def _check_level(y: np.ndarray, name: str) -> None:
    _check_peak(float(np.abs(y).max()), name)


def _check_peak(peak: float, name: str) -> None:
    if peak < SILENCE_PEAK:
        level = "digital silence" if peak == 0 else f"peak {20 * math.log10(peak):.0f} dBFS"
        raise AudioError(f"{name}: audio is silent ({level})")


def _check_speech_band(y: np.ndarray, sr: int, name: str) -> None:
    share = speech_share(y, sr)
    if share < MIN_SPEECH_SHARE:
        low, high = SPEECH_BAND[0], min(SPEECH_BAND[1], sr / 2)
        raise AudioError(
            f"{name}: no speech found (only {100 * share:.2g}% of the sound lies between {low:g} and {high:g} Hz, "
            f"where speech is; a hum, a low tone or a DC offset?)"
        )


def trim_silence(y: np.ndarray, sr: int, top_db: float) -> np.ndarray:
    """Drop leading and trailing audio whose 25 ms RMS is more than `top_db` below the loudest frame."""
    frame, hop = max(1, round(0.025 * sr)), max(1, round(0.010 * sr))
    if len(y) <= frame:
        return y
    starts = np.arange(0, len(y) - frame + 1, hop)
    windows = np.lib.stride_tricks.sliding_window_view(y, frame)[starts]  # (n_frames, frame)
    rms_db = 10 * np.log10(np.maximum(np.mean(windows**2, axis=1), 1e-20))
    loud = np.flatnonzero(rms_db > rms_db.max() - top_db)
    return y[starts[loud[0]] : starts[loud[-1]] + frame]


def check_clip(y: np.ndarray, cfg: AudioConfig, segment: endpoint.Segment | None = None) -> list[str]:
    """Warnings about a mono clip at cfg.sr that the model may hear wrongly (clipped, cut by the crop,
    more than one word); `segment` is the detector's find in it, when the model uses the detector.

    The crop warning measures what the model is given: the word found, the sound kept by cfg.trim_db,
    or the whole file.
    """
    notes = [note] if (note := clipping_note(clipped_share(y))) else []
    if segment is not None and segment.runs > 1:
        notes.append(
            f"{segment.runs} separate stretches of speech: the model hears only the loudest "
            f"({max(segment.start, 0) / cfg.sr:.2f}-{min(segment.end, len(y)) / cfg.sr:.2f} s); give one digit per clip"
        )
    if cfg.n_samples is not None:
        if segment is not None:
            sound, where = segment.end - segment.start, "of the word found"
        elif cfg.trim_db is not None:
            sound, where = len(trim_silence(y, cfg.sr, cfg.trim_db)), "after trimming silence"
        else:
            sound, where = len(y), "of the file"
        if sound > 1.5 * cfg.n_samples:
            notes.append(
                f"{sound / cfg.sr:.1f} s of sound, but the model hears only the first {cfg.duration:g} s "
                f"{where}: the rest is cut off"
            )
    return notes


def levels_dbfs(y: np.ndarray) -> tuple[float, float]:
    """Peak and RMS level of `y` in dBFS (-200 for silence)."""
    peak, rms = float(np.abs(y).max()), float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    return 20 * math.log10(max(peak, 1e-10)), 20 * math.log10(max(rms, 1e-10))


def clipped_share(y: np.ndarray) -> float:
    """The share of samples at full scale (|y| >= 0.999)."""
    return float(np.mean(np.abs(y) >= 0.999))


def clipping_note(clipped: float) -> str | None:
    """A warning when more than 0.1% of the samples (`clipped`, a share) sit at full scale: the recording
    level was too high."""
    if clipped > 0.001:
        return f"{100 * clipped:.1f}% of samples are clipped at full scale; record at a lower level"
    return None


def fix_length(y: np.ndarray, n: int, *, pad: Pad = Pad.END) -> np.ndarray:
    """Cut the end, or zero-pad (at the end, as librosa.util.fix_length, or at the start), to len(y) == n."""
    if len(y) >= n:
        return y[:n]
    return np.pad(y, (0, n - len(y)) if pad is Pad.END else (n - len(y), 0))


def prepare(y: np.ndarray, cfg: AudioConfig, *, name: str = "waveform") -> np.ndarray:
    """Apply the config's endpointing (detector or trim) and length rule to one mono waveform at cfg.sr."""
    result = prepare_all([y], cfg, names=[name])[0]
    if isinstance(result, AudioError):
        raise result
    return result


def prepare_all(
    waves: Sequence[np.ndarray],
    cfg: AudioConfig,
    *,
    names: Sequence[str],
    found: Sequence[endpoint.Segment | None] | None = None,
) -> list[np.ndarray | AudioError]:
    """`prepare` for many clips (the detector runs on them in batches): each clip's model waveform, or
    an AudioError naming it (names[i]) where the detector finds no speech. `found`: the detector's
    segments when the caller already has them (`find_words`)."""
    if found is None:
        found = find_words(waves, cfg)
    out: list[np.ndarray | AudioError] = []
    for y, segment, name in zip(waves, found, names, strict=True):
        if cfg.vad and segment is None:
            out.append(AudioError(f"{name}: no speech found (the speech detector heard no voice)"))
            continue
        if segment is not None:  # silence where the segment's margins reach past the clip
            y = np.pad(y[max(segment.start, 0) : segment.end], (max(-segment.start, 0), max(segment.end - len(y), 0)))
        elif cfg.trim_db is not None:
            y = trim_silence(y, cfg.sr, cfg.trim_db)
        out.append(y if cfg.n_samples is None else fix_length(y, cfg.n_samples, pad=cfg.pad))
    return out


def find_words(waves: Sequence[np.ndarray], cfg: AudioConfig) -> list[endpoint.Segment | None]:
    """The detector's word in each clip when the config uses it; all None otherwise."""
    return endpoint.find_words(waves, cfg.sr) if cfg.vad else [None] * len(waves)


def load(path: str | os.PathLike[str], cfg: AudioConfig) -> np.ndarray:
    """Read one file and prepare it as `cfg` says: the single path from file to model waveform."""
    return prepare(read_audio(path, cfg.sr, max_duration=cfg.max_duration), cfg, name=str(path))


def load_all(paths: Sequence[str | os.PathLike[str]], cfg: AudioConfig) -> list[np.ndarray]:
    """`load` for many files, the detector batched; the first unusable file raises AudioError."""
    waves = [read_audio(p, cfg.sr, max_duration=cfg.max_duration) for p in paths]
    prepared = prepare_all(waves, cfg, names=[str(p) for p in paths])
    for result in prepared:
        if isinstance(result, AudioError):
            raise result
    return prepared  # type: ignore[return-value]  # no AudioError left


def batch(waves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack waveforms into a zero-padded (N, L_max) float32 array and their lengths (N,) as int64: the
    inputs of every model (`torch.from_numpy` takes them without a copy)."""
    if not waves:
        raise AudioError("no audio to batch")
    lengths = np.array([len(w) for w in waves], dtype=np.int64)
    out = np.zeros((len(waves), int(lengths.max())), dtype=np.float32)
    for i, w in enumerate(waves):
        out[i, : len(w)] = w
    return out, lengths
