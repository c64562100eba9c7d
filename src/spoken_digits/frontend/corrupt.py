"""Corruptions of speech waveforms: additive noise at a set SNR, reverberation, band-limiting, gain, placement.

Small pure functions on float32 numpy waveforms (shape (..., n): one clip or a batch, time on the last
axis) at a rate `sr`, drawing every random number from an explicit `np.random.Generator`, so a corruption
repeats exactly under the same seed. Used by the robustness benchmark and by multi-condition training.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from spoken_digits.errors import ParameterError
from spoken_digits.frontend import audio

NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # noise power spectral density ∝ 1 / f**exponent
TELEPHONE_BAND = (300.0, 3400.0)  # Hz: the analogue telephone channel (ITU-T G.712)
MID_HZ = 707.0  # Hz: the middle (geometric) of the 500 Hz-1 kHz band a room's T60 is quoted for
SPEED_OF_SOUND = 343.0  # m/s


def _float32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _power(x: np.ndarray) -> np.ndarray:
    """Mean square over the last axis, in float64, keeping it: (..., 1)."""
    return np.mean(np.square(x, dtype=np.float64), axis=-1, keepdims=True)


def _unit_rms(x: np.ndarray, what: str) -> np.ndarray:
    power = _power(x)
    if np.any(power == 0):
        raise ParameterError(f"{what} is silent (all zeros): it cannot be scaled to a level")
    return x / np.sqrt(power)


def _positive(value: float, name: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ParameterError(f"{name} must be a positive number, got {value!r}")


def gain_db(y: np.ndarray, db: float) -> np.ndarray:
    """`y` made `db` decibels louder (negative: quieter); same shape."""
    if not math.isfinite(db):
        raise ParameterError(f"gain must be a finite number of dB, got {db!r}")
    return _float32(np.asarray(y, dtype=np.float64) * 10 ** (db / 20))


def colored_noise(shape: int | tuple[int, ...], rng: np.random.Generator, *, exponent: float) -> np.ndarray:
    """Gaussian noise of unit RMS whose power spectral density falls as 1 / f**exponent, shape `shape`.

    exponent 0 is white, 1 pink (-3 dB per octave), 2 brown (-6 dB per octave); each row along the
    last axis is shaped in the frequency domain (DC removed) and scaled to unit RMS on its own.
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not shape or shape[-1] < 2:
        raise ParameterError(f"noise needs at least 2 samples on its last axis, got shape {shape}")
    white = rng.standard_normal(shape)
    if exponent == 0:
        return _float32(_unit_rms(white, "noise"))
    n = shape[-1]
    spectrum = np.fft.rfft(white, axis=-1)  # (..., n // 2 + 1)
    bins = np.arange(spectrum.shape[-1], dtype=np.float64)
    bins[0] = np.inf  # no DC: a 1/f spectrum has none to give
    spectrum *= bins ** (-exponent / 2)
    return _float32(_unit_rms(np.fft.irfft(spectrum, n=n, axis=-1), "noise"))


def noise(kind: str, shape: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS `kind` noise ('white', 'pink' or 'brown') of shape `shape`."""
    if kind not in NOISE_EXPONENTS:
        raise ParameterError(f"unknown noise colour {kind!r}; choose one of: {', '.join(NOISE_EXPONENTS)}")
    return colored_noise(shape, rng, exponent=NOISE_EXPONENTS[kind])


def fit_length(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random stretch of `n` samples of 1-D `x`, looping `x` (from a random start) when it is shorter."""
    x = np.asarray(x)
    if x.ndim != 1 or len(x) == 0:
        raise ParameterError(f"expected a non-empty 1-D waveform, got shape {x.shape}")
    if len(x) >= n:
        start = int(rng.integers(0, len(x) - n + 1))
        return _float32(x[start : start + n])
    return _float32(np.resize(np.roll(x, -int(rng.integers(0, len(x)))), n))


def babble(streams: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """Several talkers at once: each 1-D stream brought to unit RMS, cut to `n` samples at a random place
    (looped if short), summed and scaled to unit RMS; shape (n,). Pass speech the tested clip is not from."""
    if not streams:
        raise ParameterError("babble needs at least one talker's speech")
    talkers = [_unit_rms(fit_length(s, n, rng).astype(np.float64), f"babble talker {i}") for i, s in enumerate(streams)]
    return _float32(_unit_rms(np.sum(talkers, axis=0), "babble"))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float | np.ndarray, *, offset: int = 0) -> np.ndarray:
    """`speech` (..., n) added at sample `offset` into `noise` (..., m), m >= offset + n, the noise scaled so
    that speech power / noise power = `snr_db`, both powers measured over the speech's own samples.

    Returns (..., m): the noise before and after the speech stays (a lead-in and trail at the same level).
    `snr_db` is a number or an array broadcasting to the batch shape (...).
    """
    speech, noise = np.asarray(speech, dtype=np.float64), np.asarray(noise, dtype=np.float64)
    n, m = speech.shape[-1], noise.shape[-1]
    if offset < 0 or offset + n > m or speech.shape[:-1] != noise.shape[:-1]:
        raise ParameterError(
            f"noise of shape {noise.shape} cannot hold speech of shape {speech.shape} at offset {offset}: "
            "the batch shapes must match and the noise must be at least offset + n samples long"
        )
    snr = np.asarray(snr_db, dtype=np.float64)[..., None]  # (..., 1)
    if not np.all(np.isfinite(snr)):
        raise ParameterError(f"SNR must be a finite number of dB, got {snr_db!r}")
    speech_power, noise_power = _power(speech), _power(noise[..., offset : offset + n])
    if np.any(speech_power == 0) or np.any(noise_power == 0):
        raise ParameterError("speech or noise is silent where they overlap: no SNR can be set")
    mixed = noise * np.sqrt(speech_power / (noise_power * 10 ** (snr / 10)))
    mixed[..., offset : offset + n] += speech
    return _float32(mixed)


def sabine_drr_db(t60: float, *, volume: float = 60.0, distance: float = 1.0) -> float:
    """Direct-to-reverberant energy ratio (dB) at `distance` m from a talker in a room of `volume` m³ and
    reverberation time `t60` s (diffuse field, Sabine: DRR = A / (16 π r²), A = 0.161 V / T60)."""
    for value, name in ((t60, "t60"), (volume, "volume"), (distance, "distance")):
        _positive(value, name)
    absorption = 0.161 * volume / t60  # m² of open window
    return 10 * math.log10(absorption / (16 * math.pi * distance**2))


def synthetic_rir(
    sr: int, t60: float, rng: np.random.Generator, *, drr_db: float, predelay: float = 0.003
) -> np.ndarray:
    """A room impulse response (L,), L = ceil(t60 * sr) + predelay: a direct path, then Gaussian noise
    decaying by 60 dB in `t60` seconds from `predelay` on (the statistical late-reverberation model).

    The tail carries 10**(-drr_db / 10) times the direct path's energy; the whole has unit energy,
    so convolving keeps a clip's level roughly as it was.
    """
    _positive(sr, "sr")
    _positive(t60, "t60")
    if not math.isfinite(drr_db):
        raise ParameterError(f"drr_db must be a finite number of dB, got {drr_db!r}")
    start = round(predelay * sr)
    t = np.arange(start, start + math.ceil(t60 * sr)) / sr
    tail = rng.standard_normal(len(t)) * 10 ** (-3 * t / t60)  # amplitude falls 60 dB over t60
    tail *= math.sqrt(10 ** (-drr_db / 10) / float(np.sum(tail**2)))
    rir = np.concatenate([[1.0], np.zeros(max(start - 1, 0)), tail])
    return _float32(rir / np.sqrt(np.sum(rir**2)))


def t60_at(hz: float | np.ndarray, t60: float) -> np.ndarray:
    """Reverberation time (s) at each frequency of a room whose mid-band T60 (500 Hz-1 kHz) is `t60`:
    about 3% longer at low frequencies, half as long at 4 kHz (soft furnishings and air absorb highs)."""
    return t60 * (1 + (MID_HZ / 4000) ** 2) / (1 + (np.asarray(hz, dtype=np.float64) / 4000) ** 2)


def _image_sources(rng: np.random.Generator, t60: float, order: int = 3) -> tuple[np.ndarray, np.ndarray, float]:
    """Early reflections in a random shoebox room, talker and microphone 1 m apart: each image source's
    extra path over the direct one (m) and its reflection count, images up to `order` reflections; and the
    room's mid-band wall reflection coefficient (from Sabine's formula for `t60`)."""
    room = rng.uniform([3.0, 3.0, 2.4], [9.0, 7.0, 3.6])
    while True:
        talker = rng.uniform(0.5, room - 0.5)
        direction = rng.standard_normal(3)
        microphone = talker + direction / np.linalg.norm(direction)
        if np.all(microphone > 0.3) and np.all(microphone < room - 0.3):
            break
    axes = []  # per axis: image coordinates and their reflection counts
    for x, size in zip(talker, room, strict=True):
        axes.append((np.array([x, -x, 2 * size - x, 2 * size + x, x - 2 * size]), np.array([0, 1, 1, 2, 2])))
    grid = np.stack(np.meshgrid(*(a[0] for a in axes), indexing="ij"), axis=-1).reshape(-1, 3)
    counts = np.sum(np.meshgrid(*(a[1] for a in axes), indexing="ij"), axis=0).reshape(-1)
    keep = (counts > 0) & (counts <= order)
    extra = np.linalg.norm(grid[keep] - microphone, axis=1) - 1.0
    volume, surface = float(np.prod(room)), 2 * float(room[0] * room[1] + room[0] * room[2] + room[1] * room[2])
    absorption = min(max(0.161 * volume / (surface * t60), 0.02), 0.9)
    return extra, counts[keep], math.sqrt(1 - absorption)


def fdn_tail(sr: int, t60: float, size: int, rng: np.random.Generator, *, lines: int = 8) -> np.ndarray:
    """The impulse response (size,) of a feedback delay network (Jot): `lines` delay lines of 10-35 ms
    mixed by a random orthogonal matrix, each with a 3-tap loop filter whose gain makes a 60 dB decay
    in `t60_at(f, t60)` at 707 Hz and at 4 kHz (or the Nyquist frequency, if lower).

    Run in blocks of the shortest delay: within a block the network only reads what earlier blocks wrote.
    """
    shortest, longest = max(round(0.010 * sr), 2), max(round(0.035 * sr), lines + 2)
    delays = np.sort(rng.choice(np.arange(shortest, longest + 1), size=lines, replace=False))  # (N,)
    q, r = np.linalg.qr(rng.standard_normal((lines, lines)))
    mixing = q * np.sign(np.diag(r))  # random orthogonal: a lossless network before the loop gains
    into, out = rng.choice([-1.0, 1.0], size=lines), rng.choice([-1.0, 1.0], size=lines)
    low, high = MID_HZ, min(4000.0, sr / 2)
    gain_low, gain_high = (10 ** (-3 * delays / (sr * t60_at(f, t60))) for f in (low, high))  # per pass, (N,)
    c_low, c_high = math.cos(2 * math.pi * low / sr), math.cos(2 * math.pi * high / sr)
    ratio = gain_high / gain_low
    # loop filter g * (a, 1 - 2a, a): gain g * (1 - 2a (1 - cos w)), equal to gain_low and gain_high at the two
    tap = np.zeros(lines) if high < 1.5 * low else (1 - ratio) / (2 * ((1 - c_high) - ratio * (1 - c_low)))
    tap = np.clip(tap, 0.0, 0.25)
    g = gain_low / (1 - 2 * tap * (1 - c_low))
    pad = int(delays[-1]) + 2
    v = np.zeros((lines, pad + size + 1))  # what enters each line; (N, pad + size + 1)
    v[:, pad] = into  # the impulse
    w = np.zeros((lines, size))  # what leaves each line, after its loop filter
    for t in range(0, size, int(delays[0])):
        n = min(int(delays[0]), size - t)
        x = np.take_along_axis(v, pad + t - delays[:, None] + np.arange(-1, n + 1), axis=1)  # (N, n + 2)
        block = g[:, None] * (tap[:, None] * (x[:, :-2] + x[:, 2:]) + (1 - 2 * tap)[:, None] * x[:, 1:-1])
        w[:, t : t + n] = block
        v[:, pad + t : pad + t + n] += mixing @ block
    return out @ w


def fdn_rir(sr: int, t60: float, rng: np.random.Generator, *, drr_db: float, predelay: float = 0.003) -> np.ndarray:
    """A room impulse response (L,) from another model than `synthetic_rir` and training's pyroomacoustics
    rooms: a direct path; early reflections of a random shoebox room (image sources up to 3 reflections,
    talker and microphone 1 m apart, walls absorbing more at high frequencies); and a late tail from a
    feedback delay network (`fdn_tail`).

    `t60` is the mid-band (500 Hz-1 kHz) reverberation time; highs decay faster (`t60_at`). Reflections
    and tail carry 10**(-drr_db / 10) times the direct path's energy (the early ones at most half of it);
    L = predelay + 1.1 * t60 s, the whole of unit energy.
    """
    _positive(sr, "sr")
    _positive(t60, "t60")
    if t60 < 0.05:
        raise ParameterError(f"fdn_rir needs a t60 of 0.05 s or more (its delay lines are 10-35 ms), got {t60!r}")
    if not math.isfinite(drr_db):
        raise ParameterError(f"drr_db must be a finite number of dB, got {drr_db!r}")
    start, size = round(predelay * sr), math.ceil(1.1 * t60 * sr)  # size: samples from the direct path on
    late = fdn_tail(sr, t60, size, rng)

    extra, counts, reflection = _image_sources(rng, t60)
    lag = np.round(extra / SPEED_OF_SOUND * sr).astype(int)
    inside = lag < size
    n_fft = 1 << (size + 64).bit_length()  # room for the walls' short zero-phase filter not to wrap round
    by_order = np.zeros((int(counts.max()) + 1, n_fft))
    np.add.at(by_order, (counts[inside], lag[inside]), 1.0 / (1.0 + extra[inside]))  # spreading: 1 / distance
    wall = reflection ** (t60 / t60_at(np.fft.rfftfreq(n_fft, 1 / sr), t60))  # (K,) per reflection
    early = np.sum(np.fft.rfft(by_order, axis=-1) * wall ** np.arange(len(by_order))[:, None], axis=0)
    early_t = np.fft.irfft(early, n_fft)[:size]

    reverberant = 10 ** (-drr_db / 10)  # the direct path has energy 1
    early_t *= min(1.0, math.sqrt(0.5 * reverberant / max(float(np.sum(early_t**2)), 1e-30)))
    late *= math.sqrt((reverberant - float(np.sum(early_t**2))) / float(np.sum(late**2)))
    rir = np.zeros(start + size)
    rir[start] = 1.0
    rir[start:] += early_t + late
    return _float32(rir / np.sqrt(np.sum(rir**2)))


def convolve(y: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """`y` (..., n) convolved with the 1-D impulse response `rir` (L,) by FFT; (..., n + L - 1), the tail kept."""
    y, rir = np.asarray(y, dtype=np.float64), np.asarray(rir, dtype=np.float64)
    if rir.ndim != 1 or len(rir) == 0:
        raise ParameterError(f"an impulse response must be a non-empty 1-D array, got shape {rir.shape}")
    size = y.shape[-1] + len(rir) - 1
    n_fft = 1 << (size - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(y, n_fft, axis=-1) * np.fft.rfft(rir, n_fft), n_fft, axis=-1)
    return _float32(out[..., :size])


def reverberate(
    y: np.ndarray, sr: int, t60: float, rng: np.random.Generator, *, drr_db: float | None = None
) -> np.ndarray:
    """`y` (..., n) as heard in a room with reverberation time `t60` s: (..., n + L - 1), L the response's length.

    One synthetic impulse response (see `synthetic_rir`) for the whole batch; `drr_db` defaults to a 60 m³
    room heard from 1 m (`sabine_drr_db`), so longer T60s are also more reverberant, as in real rooms.
    """
    drr = sabine_drr_db(t60) if drr_db is None else drr_db
    return convolve(y, synthetic_rir(sr, t60, rng, drr_db=drr))


def band_limit(y: np.ndarray, sr: int, *, low: float, high: float, transition: float = 100.0) -> np.ndarray:
    """`y` (..., n) with everything below `low` Hz and above `high` Hz removed; same shape.

    An FFT mask with raised-cosine edges `transition` Hz wide inside the band (a short kernel, so no long
    ringing), applied to the clip zero-padded by 50 ms so nothing wraps round from its end to its start.
    """
    _positive(sr, "sr")
    high = min(high, sr / 2)
    if not (0 <= low < high - 2 * transition):
        raise ParameterError(
            f"band {low:g}-{high:g} Hz (at sr {sr} Hz) is empty or narrower than 2 x {transition:g} Hz"
        )
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[-1]
    n_fft = n + round(0.05 * sr)
    hz = np.fft.rfftfreq(n_fft, 1 / sr)
    rise = np.clip((hz - low) / transition, 0, 1)
    fall = np.clip((high - hz) / transition, 0, 1)
    mask = np.sin(np.pi / 2 * rise) ** 2 * np.sin(np.pi / 2 * fall) ** 2
    mask[(hz < low) | (hz > high)] = 0.0
    if high >= sr / 2:  # no upper edge below Nyquist: keep the top
        mask[hz >= low + transition] = 1.0
    return _float32(np.fft.irfft(np.fft.rfft(y, n_fft, axis=-1) * mask, n_fft, axis=-1)[..., :n])


def telephone(y: np.ndarray, sr: int) -> np.ndarray:
    """`y` (..., n) through the telephone band, 300-3400 Hz; same shape."""
    return band_limit(y, sr, low=TELEPHONE_BAND[0], high=TELEPHONE_BAND[1])


def place_in_window(y: np.ndarray, sr: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """1-D `y` at a random place inside exactly `seconds` of silence, shape (round(seconds * sr),).

    A clip longer than the window is cut to a random stretch of it, as a fixed-window recorder would.
    """
    _positive(seconds, "seconds")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"expected a 1-D waveform, got shape {y.shape}")
    size = round(seconds * sr)
    if len(y) >= size:
        start = int(rng.integers(0, len(y) - size + 1))
        return _float32(y[start : start + size])
    out = np.zeros(size, dtype=np.float32)
    start = int(rng.integers(0, size - len(y) + 1))
    out[start : start + len(y)] = y
    return out


def read_noise_dir(folder: str | os.PathLike[str], sr: int) -> list[np.ndarray]:
    """Every audio file in `folder` (any format soundfile reads) as float32 mono at `sr` Hz, shape (samples,).

    Not through `audio.read_audio`: noise need not sound like speech (a rumble has no speech-band energy).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ParameterError(f"--noise-dir {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in audio.AUDIO_SUFFIXES)
    if not files:
        raise ParameterError(f"--noise-dir {folder}: no audio files ({', '.join(sorted(audio.AUDIO_SUFFIXES))})")
    return read_noises(files, sr, what="--noise-dir")


def read_noises(files: Sequence[Path], sr: int, *, what: str) -> list[np.ndarray]:
    """Noise recordings as float32 mono at `sr`; `what` names where they came from in errors."""
    noises = []
    for path in files:
        try:
            info = sf.info(path)
            if info.frames * info.channels > audio.MAX_SAMPLES:
                raise ParameterError(f"{what}: {path}: over {audio.MAX_SAMPLES} samples; cut it shorter")
            data, rate = sf.read(path, dtype="float32", always_2d=True)  # (samples, channels)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise ParameterError(f"{what}: {path}: cannot be read as audio ({exc})") from None
        y = data.mean(axis=1)
        y = y if rate == sr else soxr.resample(y, rate, sr, quality="HQ").astype(np.float32)
        if len(y) < 2 or not np.all(np.isfinite(y)) or not np.any(y):
            raise ParameterError(f"{what}: {path}: empty, silent or not finite; it cannot be used as noise")
        noises.append(y)
    return noises
