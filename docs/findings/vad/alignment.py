"""How often the detector misses a clean FSDD word, by where the clip starts against its 32 ms steps.

    FSDD_ROOT=../shared/data/fsdd python docs/findings/vad/alignment.py

Each clip is given `lead` seconds of silence before it (and 0.1 s after). The detector runs at one
alignment of its steps without settling silence (as first tried), at four alignments without it,
and as shipped (four alignments after 128 ms of settling silence).
"""

from __future__ import annotations

import os

import numpy as np

from spoken_digits.data import fsdd
from spoken_digits.frontend import audio, endpoint


def misses(waves: list[np.ndarray], lead: float) -> int:
    n = round(lead * 8000)
    found = endpoint.find_words([np.pad(w, (n, 800)) for w in waves], 8000)
    return sum(s is None for s in found)


def main() -> None:
    clips = fsdd.index(fsdd.recordings_dir(fsdd.locate(os.environ.get("FSDD_ROOT"), download=False)))
    waves = [audio.read_audio(c.path, 8000) for c in clips]
    leads = (0.0, 0.1, 0.108, 0.116, 0.5, 0.532)
    shipped = {lead: misses(waves, lead) for lead in leads}
    settle = endpoint.SETTLE
    endpoint.SETTLE = 0
    four = {lead: misses(waves, lead) for lead in leads}
    endpoint.PHASES, endpoint.STEP = 1, endpoint.CHUNK
    one = {lead: misses(waves, lead) for lead in leads}
    print(f"clean clips missed, of {len(waves)}")
    ms = settle / endpoint.RATE * 1000
    print(f"| lead (s) | one alignment | four alignments | four, after {ms:.0f} ms of silence |")
    print("|---|---|---|---|")
    for lead in leads:
        print(f"| {lead:.3f} | {one[lead]} | {four[lead]} | {shipped[lead]} |")


if __name__ == "__main__":
    main()
