"""Word-free synthetic talkers: the robustness benchmark's second babble, made without any recording.

The first babble (`corrupt.babble`) sums other FSDD speakers' digit clips, and training mixes other
clips of the batch, so a model can learn what that babble sounds like. This one shares no audio and
no recipe with either. Each talker is a source-filter voice synthesised frame by frame (8 ms hop):

- source: a glottal pulse train on the talker's own pitch contour (a base pitch of 90-150 Hz or
  170-260 Hz, falling over each phrase, with a random accent per syllable), plus breath noise;
- filter: four formant resonances (unit gain at DC) gliding between random vowels of a table of
  American English vowel averages, scaled for the talker's vocal tract (x0.92-1.22), over a glottal
  roll-off and lip radiation, with a per-talker spectral tilt of -3 to +1 dB per octave;
- syllables: random vowel nuclei of 80-220 ms, each with a fricative-like noise onset (60% of them)
  or coda (35%), short gaps, and 0.1-0.4 s pauses between phrases of 2-7 syllables: an amplitude
  modulation of about 3-5 Hz, as in speech; the sequences are random, so no words;
- talkers: 4-8 summed, each at its own level (+-3 dB), each starting at a random place in its speech.

Filtering is done by short-time Fourier transform (32 ms sqrt-Hann frames, 75% overlap), so the
formants move smoothly and one talker costs a few milliseconds.
"""

from __future__ import annotations

import numpy as np

from spoken_digits.errors import ParameterError

# Hz: first three formants of twelve American English vowels (adult male averages, Hillenbrand et al. 1995)
_VOWELS = ((342, 2322, 3000), (427, 2034, 2684), (476, 2089, 2691), (580, 1799, 2605), (588, 1952, 2601),
           (768, 1333, 2522), (652, 997, 2538), (497, 910, 2459), (469, 1122, 2434), (378, 997, 2343),
           (623, 1200, 2550), (474, 1379, 1710))  # fmt: skip
VOWEL_FORMANTS = np.array(_VOWELS, dtype=np.float64)  # (12, 3)
F4 = 3500.0  # Hz, the fourth formant before scaling
BANDWIDTHS = np.array([70.0, 100.0, 150.0, 220.0])  # Hz, of the four formants before scaling
HOP_S = 0.008  # s between frames
TALKERS = (4, 8)  # talkers in one babble, both included


def _schedule(frames: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Frame-rate parameters of one talker's speech, at least `frames` long: pitch (a factor of the
    talker's base), vowel and fricative amplitudes, formants (4, before the talker's scaling) and the
    fricative's centre frequency (a share of sr)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("pitch", "voiced", "fricative", "formants", "centre")}

    def add(formants: np.ndarray, *, accent: float | np.ndarray = 1.0, voiced: float | np.ndarray = 0.0,
            fricative: float = 0.0, centre: float = 0.3) -> None:  # fmt: skip
        n = len(formants)
        parts["pitch"].append(np.broadcast_to(accent, n))  # the phrase's fall is applied once it is done
        parts["voiced"].append(np.broadcast_to(voiced, n))
        parts["fricative"].append(np.full(n, fricative))
        parts["formants"].append(formants)
        parts["centre"].append(np.full(n, centre))

    total = 0
    while total < frames:
        before = len(parts["pitch"])
        for length in rng.integers(10, 28, size=int(rng.integers(2, 8))):  # a phrase's vowel nuclei, in frames
            a, b = VOWEL_FORMANTS[rng.integers(len(VOWEL_FORMANTS), size=2)]
            b = a if rng.random() < 0.5 else b  # half glide to a second vowel
            glide = np.linspace(0, 1, length)[:, None]
            nucleus = np.column_stack([a + (b - a) * glide, np.full(length, F4)])  # (length, 4)
            centre = rng.uniform(0.25, 0.42)
            if rng.random() < 0.6:  # a fricative-like onset
                add(nucleus[:1].repeat(rng.integers(4, 10), 0), fricative=rng.uniform(0.05, 0.25), centre=centre)
            accent = 1 + rng.uniform(-0.05, 0.2) * np.sin(np.pi * glide[:, 0])
            level = rng.uniform(0.4, 1.0) * np.sin(np.pi * (np.arange(length) + 0.5) / length) ** 0.6
            add(nucleus, accent=accent, voiced=level)
            if rng.random() < 0.35:  # a coda
                add(nucleus[-1:].repeat(rng.integers(4, 10), 0), fricative=rng.uniform(0.05, 0.25), centre=centre)
            add(nucleus[-1:].repeat(rng.integers(1, 6), 0))  # a gap
        add(parts["formants"][-1][-1:].repeat(rng.integers(12, 50), 0))  # a pause between phrases
        phrase = np.concatenate(parts["pitch"][before:])
        fall = np.linspace(rng.uniform(1.05, 1.2), rng.uniform(0.8, 0.92), len(phrase))  # pitch falls over it
        parts["pitch"][before:] = [phrase * fall]
        total += len(phrase)
    return {k: np.concatenate(v) for k, v in parts.items()}


def _frames(x: np.ndarray, win: np.ndarray, hop: int, count: int) -> np.ndarray:
    """`count` windowed frames of 1-D `x` every `hop` samples, as spectra (count, len(win) // 2 + 1)."""
    idx = np.arange(count)[:, None] * hop + np.arange(len(win))
    return np.fft.rfft(x[idx] * win, axis=-1)


def talker(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One synthetic talker's word-free speech, (n,) float64, at an arbitrary level (see the module)."""
    hop = max(1, round(HOP_S * sr))
    size = 4 * hop  # 75% overlap
    win = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size))  # periodic sqrt-Hann
    count = -(-n // hop) + 4
    female = rng.random() < 0.5
    base = rng.uniform(170, 260) if female else rng.uniform(90, 150)
    scale = rng.uniform(1.08, 1.22) if female else rng.uniform(0.92, 1.05)
    tilt, widen, breath = rng.uniform(-3, 1), rng.uniform(0.8, 1.4), rng.uniform(0.02, 0.15)

    plan = _schedule(count + 60, rng)
    start = int(rng.integers(0, len(plan["pitch"]) - count + 1))  # anywhere in a phrase, or in a pause
    plan = {k: v[start : start + count] for k, v in plan.items()}

    hz = np.fft.rfftfreq(size, 1 / sr)  # (K,)
    f = plan["formants"][:, :, None] * scale  # (count, 4, 1)
    b = (BANDWIDTHS * widen)[None, :, None]
    resonances = f**2 / np.sqrt((f**2 - hz**2) ** 2 + (hz * b) ** 2)  # (count, 4, K), unit gain at DC
    glottal = (hz / 150.0) / (1 + (hz / 150.0) ** 2)  # roll-off -12 dB/oct above ~150 Hz, lips +6 dB/oct
    slope = 10 ** (tilt * np.log2(np.maximum(hz, 50.0) / 500.0) / 20)
    vowel = np.prod(resonances, axis=1) * glottal * slope  # (count, K)
    vowel /= np.sqrt(np.mean(vowel**2, axis=-1, keepdims=True))
    octaves = np.log2(np.maximum(hz, 1.0) / (plan["centre"][:, None] * sr))
    hiss = np.exp(-0.5 * (octaves / 0.7) ** 2)  # (count, K): a bump about 1.4 octaves wide
    hiss /= np.sqrt(np.mean(hiss**2, axis=-1, keepdims=True))

    samples = count * hop + size
    f0 = np.interp(np.arange(samples) / hop, np.arange(count), plan["pitch"] * base)
    phase = rng.random() + np.cumsum(f0 / sr)
    pulses = np.diff(np.floor(phase), prepend=np.floor(phase[0])) * np.sqrt(sr / base)  # about unit power
    noise = rng.standard_normal(samples)
    voiced, fricative = plan["voiced"][:, None], plan["fricative"][:, None]
    spectra = _frames(pulses, win, hop, count) * vowel * voiced
    spectra += _frames(noise, win, hop, count) * (hiss * fricative + breath * vowel * voiced)
    quarters = (np.fft.irfft(spectra, size, axis=-1) * win).reshape(count, 4, hop)
    out = np.zeros((count + 3, hop))
    for k in range(4):  # overlap-add: frame i's quarter k lands on the hop i + k
        out[k : k + count] += quarters[:, k]
    return out.reshape(-1)[3 * hop : 3 * hop + n] / 2.0  # sqrt-Hann twice at 75% overlap sums to 2


def synthetic_babble(n: int, sr: int, rng: np.random.Generator, *, talkers: int | None = None) -> np.ndarray:
    """Unit-RMS babble (n,) float32 of `talkers` synthetic word-free talkers (4-8 drawn when None)."""
    if n < 2:
        raise ParameterError(f"babble needs at least 2 samples, got {n}")
    if sr < 1000:
        raise ParameterError(f"synthetic babble needs sr of 1000 Hz or more, got {sr}")
    count = int(rng.integers(TALKERS[0], TALKERS[1] + 1)) if talkers is None else talkers
    if count < 1:
        raise ParameterError(f"babble needs at least one talker, got {count}")
    mixed = np.zeros(n)
    for _ in range(count):  # each talker is about unit power while it speaks: levels as drawn
        mixed += talker(n, sr, rng) * 10 ** (rng.uniform(-3, 3) / 20)
    power = float(np.mean(mixed**2))
    if power == 0:
        raise ParameterError(f"babble of {n} samples came out silent (every talker paused); ask for a longer stretch")
    return (mixed / np.sqrt(power)).astype(np.float32)
