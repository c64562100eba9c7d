"""Coverage-guided fuzzing of the audio reader (atheris): any bytes give a clip or an AudioError.

    python fuzz/fuzz_audio.py -max_total_time=600      # ten minutes
    python fuzz/fuzz_audio.py -runs=2000               # a fixed number of inputs

Any other exception, a hang or a crash is a finding; libFuzzer saves the input as crash-*.
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris
import numpy as np

with atheris.instrument_imports(include=["spoken_digits"]):  # guide coverage by our own code only
    from spoken_digits.errors import AudioError
    from spoken_digits.frontend.audio import MIN_SECONDS, read_audio

SUFFIXES = (".wav", ".flac", ".ogg", ".aiff")
FOLDER = tempfile.mkdtemp(prefix="fuzz-audio-")


def one_input(data: bytes) -> None:
    """Write `data` as a file (suffix chosen by its first byte) and read it."""
    suffix = SUFFIXES[data[0] % len(SUFFIXES)] if data else ".wav"
    path = os.path.join(FOLDER, "input" + suffix)
    with open(path, "wb") as f:
        f.write(data[1:])
    try:
        y = read_audio(path, 8000, max_duration=30)
    except AudioError:
        return
    if not (y.dtype == np.float32 and y.ndim == 1 and len(y) >= MIN_SECONDS * 8000 and np.isfinite(y).all()):
        raise AssertionError(f"read_audio returned an invalid clip: {y.dtype} {y.shape}")


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
