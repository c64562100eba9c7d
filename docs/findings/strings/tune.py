"""How the word-model string decoder's two weights were chosen: on training takes only.

    PYTHONPATH=. python docs/findings/strings/tune.py MODEL > docs/findings/strings/tune.md

Builds 60 strings per row from FSDD's official training split (the test speakers' test takes are the
benchmark's, never used here): clean with pauses of 100-500 ms and of 0-100 ms, and pink and white
noise at 10 dB with pauses of 0-500 ms. Then scores a grid of CUT_WEIGHT x DEPTH_EVEN
(spoken_digits.recognize.segment) by digit error rate and whole-string accuracy.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from benchmarks.common import clips as fsdd_clips
from benchmarks.strings import Builder, Spoken, add_noise, score

from spoken_digits.config import SplitConfig
from spoken_digits.data import fsdd
from spoken_digits.data.splits import make_folds
from spoken_digits.frontend import corrupt
from spoken_digits.recognize import segment
from spoken_digits.recognize.load import load_predictor
from spoken_digits.recognize.strings import transcribe

GRID = [(weight, even) for weight in (3.0, 6.0, 10.0) for even in (0.4, 0.55, 0.7)]


def main() -> None:
    torch.set_num_threads(1)
    predictor = load_predictor(sys.argv[1])
    clips = fsdd_clips(None)
    fold = make_folds(fsdd.as_clips(clips), SplitConfig())[0]
    builder, rng = Builder([clips[i] for i in fold.train], predictor.audio_cfg.sr), np.random.default_rng(1)
    rows = {
        "clean, 100-500 ms": [builder.build(rng, int(rng.integers(1, 11)), (0.1, 0.5)) for _ in range(60)],
        "clean, 0-100 ms": [builder.build(rng, int(rng.integers(1, 11)), (0.0, 0.1)) for _ in range(60)],
    }
    noisy = [builder.build(rng, int(rng.integers(1, 11)), (0.0, 0.5)) for _ in range(60)]
    for kind in ("pink", "white"):
        rows[f"{kind} 10 dB"] = [
            Spoken(s.digits, add_noise(s, corrupt.noise(kind, len(s.wave), rng), 10.0), s.words, s.sr) for s in noisy
        ]
    print("| CUT_WEIGHT | DEPTH_EVEN | " + " | ".join(rows) + " |")
    print("|---|---|" + "---|" * len(rows))
    for weight, even in GRID:
        segment.CUT_WEIGHT, segment.DEPTH_EVEN = weight, even
        cells = []
        for spoken in rows.values():
            r = score([s.digits for s in spoken], [t.text for t in transcribe(predictor, [s.wave for s in spoken])])
            cells.append(f"DER {100 * r['der']:.1f}%, strings {r['string_accuracy']:.2f}")
        print(f"| {weight:g} | {even:g} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
