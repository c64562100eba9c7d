"""Shared fixtures: synthetic FSDD-like audio for fast unit tests, and the real FSDD when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import lfilter

SR = 8000
SPEAKERS = ("anna", "bert", "carl")
TAKES = 8


# A vowel's first two formants (Hz) per digit; each "word" glides from its digit's vowel to another's.
VOWELS = ((730, 1090), (270, 2290), (530, 1840), (660, 1720), (300, 870),
          (570, 840), (440, 1020), (490, 1350), (400, 2000), (600, 1200))  # fmt: skip


def digit_voice(digit: int, *, sr: int = SR, seconds: float = 0.45, speaker: int = 0, seed: int = 0) -> np.ndarray:
    """A synthetic 'spoken digit' a voice detector takes for speech: a falling-pitch pulse train through
    three formant resonators gliding from the digit's vowel to the vowel three digits on.

    Speakers differ in pitch; takes differ by noise and length, so models must generalise.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr * rng.uniform(0.8, 1.2))
    t = np.arange(n) / sr
    pitch = (120 + 20 * speaker) * (1.1 - 0.2 * t / t[-1])
    source = lfilter([1.0], [1.0, -0.95], np.diff(np.floor(np.cumsum(pitch / sr)), prepend=0.0))  # glottal pulses
    (a1, a2), (b1, b2) = VOWELS[digit], VOWELS[(digit + 3) % 10]
    y, state, block = np.zeros(n), [np.zeros(2) for _ in range(3)], 160
    for s in range(0, n, block):  # formants move block by block; filter state carries over
        x, glide = source[s : s + block], s / n
        for k, (f, width) in enumerate(((a1 + (b1 - a1) * glide, 90), (a2 + (b2 - a2) * glide, 110), (2600, 160))):
            r, theta = np.exp(-np.pi * width / sr), 2 * np.pi * f / sr
            x, state[k] = lfilter([1 - r], [1.0, -2 * r * np.cos(theta), r * r], x, zi=state[k])
        y[s : s + block] = x
    envelope = np.minimum(1, np.minimum(t / 0.04, (t[-1] - t) / 0.08))
    y = 0.5 * envelope * y / np.abs(envelope * y).max() + 0.003 * rng.standard_normal(n)
    lead = np.zeros(int(rng.uniform(0.02, 0.1) * sr))
    return np.concatenate([lead, y, lead]).astype(np.float32)


@pytest.fixture(scope="session", autouse=True)
def clip_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The front end's on-disk cache (data/cache.py) in a folder of this test session, never the user's."""
    folder = tmp_path_factory.mktemp("cache")
    os.environ["SPOKEN_DIGITS_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def synthetic_fsdd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An FSDD-shaped folder: recordings/{digit}_{speaker}_{take}.wav, 3 speakers x 10 digits x 8 takes."""
    root = tmp_path_factory.mktemp("synthetic_fsdd")
    folder = root / "recordings"
    folder.mkdir()
    for s, speaker in enumerate(SPEAKERS):
        for digit in range(10):
            for take in range(TAKES):
                y = digit_voice(digit, speaker=s, seed=1000 * s + 10 * digit + take)
                sf.write(folder / f"{digit}_{speaker}_{take}.wav", y, SR, subtype="PCM_16")
    return root


@pytest.fixture(scope="session")
def fsdd_root() -> Path:
    """The real FSDD recordings from $FSDD_ROOT; a failure (not a skip) in CI, where it must exist."""
    root = os.environ.get("FSDD_ROOT")
    if root and any((Path(root) / "recordings").glob("*.wav")):
        return Path(root)
    if os.environ.get("CI") or os.environ.get("SPOKEN_DIGITS_REQUIRE_FSDD"):
        pytest.fail("FSDD_ROOT must point at the FSDD recordings in CI")
    pytest.skip("set FSDD_ROOT to the FSDD folder to run the integration tests")


@pytest.fixture(scope="session")
def trained_on_fsdd(fsdd_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default pipeline (speech detector, speech encoder, multi-condition training) for 8 of its 10 epochs
    on the real FSDD's official split: a run folder (model.pt)."""
    import dataclasses

    from spoken_digits.config import preset
    from spoken_digits.training.experiment import train_run

    default = preset("default")
    cfg = dataclasses.replace(default, train=dataclasses.replace(default.train, epochs=8))
    out = tmp_path_factory.mktemp("fsdd-model")
    train_run(cfg, out, data=fsdd_root, download=False)
    return out


def fsdd_string(root: Path, digits: str, *, speaker: str, pause: float = 0.3, take: int = 0) -> np.ndarray:
    """`speaker`'s official test-split takes (0-4) of `digits` at 8 kHz, `pause` s apart, 0.3 s of quiet around."""
    sr = SR
    parts = [np.zeros(round(0.3 * sr), np.float32)]
    for k, d in enumerate(digits):
        if k:
            parts.append(np.zeros(round(pause * sr), np.float32))
        y, rate = sf.read(root / "recordings" / f"{d}_{speaker}_{(take + k) % 5}.wav", dtype="float32")
        assert rate == sr
        parts.append(y)
    parts.append(np.zeros(round(0.3 * sr), np.float32))
    y = np.concatenate(parts)
    return (y + 0.0005 * np.random.default_rng(len(digits)).standard_normal(len(y))).astype(np.float32)


def _train_synthetic(synthetic_fsdd: Path, out: Path, *options: str) -> Path:
    from spoken_digits.apps.cli import main

    argv = ["train", "--data", str(synthetic_fsdd), "--out", str(out), "--split", "random", "--no-download"]
    assert main([*argv, *options]) == 0
    return out


@pytest.fixture(scope="session")
def trained_default(synthetic_fsdd: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default preset (speech detector, speech encoder, multi-condition training) on the synthetic voices
    (8 kHz files heard at 16 kHz): a run folder."""
    return _train_synthetic(synthetic_fsdd, tmp_path_factory.mktemp("default"), "--epochs", "12")


@pytest.fixture(scope="session")
def trained_filler(synthetic_fsdd: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default preset with a filler class made from the training words (--filler 1.5) on the synthetic
    voices: a run folder."""
    return _train_synthetic(synthetic_fsdd, tmp_path_factory.mktemp("filler"), "--epochs", "12", "--filler", "1.5")


@pytest.fixture(scope="session")
def trained_scratch(synthetic_fsdd: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scratch preset (the same recipe on 8 kHz cepstra, no pretrained encoder) on the synthetic voices:
    the word model of the stream tests, whose formant voices a speech encoder hears less well than speech."""
    return _train_synthetic(synthetic_fsdd, tmp_path_factory.mktemp("scratch"), "--preset", "scratch", "--epochs", "12")


def voice_string(digits: str, *, pause: float = 0.25, speaker: int = 1, seed: int = 0, sr: int = SR) -> np.ndarray:
    """Synthetic voices saying `digits` with `pause` s between words and 0.3 s of quiet around them."""
    quiet = np.zeros(round(0.3 * sr), np.float32)
    parts: list[np.ndarray] = [quiet]
    for k, d in enumerate(digits):
        if k:
            parts.append(np.zeros(round(pause * sr), np.float32))
        parts.append(digit_voice(int(d), speaker=speaker, seed=seed + 7919 * k + int(d), sr=sr))
    parts.append(quiet)
    y = np.concatenate(parts)
    return (y + 0.001 * np.random.default_rng(seed).standard_normal(len(y))).astype(np.float32)
