"""Shared fixtures: synthetic FSDD-like audio for fast unit tests, and the real FSDD when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 8000
SPEAKERS = ("anna", "bert", "carl")
TAKES = 8


def digit_tone(digit: int, *, sr: int = SR, seconds: float = 0.4, speaker: int = 0, seed: int = 0) -> np.ndarray:
    """A synthetic 'spoken digit': two harmonics whose frequencies encode the digit, in a short envelope.

    Speakers shift the pitch a little; takes differ by noise and length, so models must generalise.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr * rng.uniform(0.8, 1.2))
    t = np.arange(n) / sr
    shift = 1 + 0.03 * speaker
    f1, f2 = (300 + 150 * digit) * shift, (1100 + 230 * digit) * shift
    envelope = np.sin(np.pi * np.arange(n) / n) ** 2
    y = envelope * (0.5 * np.sin(2 * np.pi * f1 * t) + 0.3 * np.sin(2 * np.pi * f2 * t))
    y += 0.01 * rng.standard_normal(n)
    lead = np.zeros(int(rng.uniform(0.02, 0.1) * sr))
    return np.concatenate([lead, y, lead]).astype(np.float32)


@pytest.fixture(scope="session")
def synthetic_fsdd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An FSDD-shaped folder: recordings/{digit}_{speaker}_{take}.wav, 3 speakers x 10 digits x 8 takes."""
    root = tmp_path_factory.mktemp("synthetic_fsdd")
    folder = root / "recordings"
    folder.mkdir()
    for s, speaker in enumerate(SPEAKERS):
        for digit in range(10):
            for take in range(TAKES):
                y = digit_tone(digit, speaker=s, seed=1000 * s + 10 * digit + take)
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
