"""How the word-model string decoder's weights were chosen: on training takes only.

    PYTHONPATH=. python docs/findings/strings/tune.py MODEL [SEED [STRINGS]] > docs/findings/strings/tune.md

Builds STRINGS (default 60) strings per row, drawn from SEED (default 1), from FSDD's official training
split (the test speakers' test takes are the benchmark's, never used here): clean with pauses of 100-500 ms
and of 0-100 ms, and pink, white and babble (five other training takes at once) at 10 dB with pauses of
0-500 ms. Then scores a grid of CUT_WEIGHT x DEPTH_EVEN with no length term, then LONG_WORD x LENGTH_WEIGHT
at the weights kept (spoken_digits.recognize.segment), by digit error rate and whole-string accuracy.
The speech detector and the word model run once: the weights change only the choice among the same pieces.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence

import numpy as np
import torch
from benchmarks.common import clips as fsdd_clips
from benchmarks.strings import Builder, Spoken, add_noise, noise, score

from spoken_digits.config import SplitConfig
from spoken_digits.data import fsdd
from spoken_digits.data.splits import make_folds
from spoken_digits.recognize import segment
from spoken_digits.recognize.load import load_predictor
from spoken_digits.recognize.strings import decode, speech_spans

WEIGHTS = [(weight, even, 0.8, 0.0) for weight in (1.0, 1.5, 2.0, 3.0) for even in (0.4, 0.5, 0.6, 0.7)]
LENGTHS = [(1.0, 0.6, long, cost) for long in (0.6, 0.7, 0.8, 0.9) for cost in (2.0, 5.0, 10.0)]
GRID = WEIGHTS + LENGTHS  # (CUT_WEIGHT, DEPTH_EVEN, LONG_WORD, LENGTH_WEIGHT)


def main() -> None:
    torch.set_num_threads(1)
    predictor = load_predictor(sys.argv[1])
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    sr = predictor.audio_cfg.sr
    clips = fsdd_clips(None)
    fold = make_folds(fsdd.as_clips(clips), SplitConfig())[0]
    builder, rng = Builder([clips[i] for i in fold.train], sr), np.random.default_rng(seed)
    rows = {
        "clean, 100-500 ms": [builder.build(rng, int(rng.integers(1, 11)), (0.1, 0.5)) for _ in range(n)],
        "clean, 0-100 ms": [builder.build(rng, int(rng.integers(1, 11)), (0.0, 0.1)) for _ in range(n)],
    }
    noisy = [builder.build(rng, int(rng.integers(1, 11)), (0.0, 0.5)) for _ in range(n)]
    talkers = [builder.wave(clips[i]) for i in fold.train[::10]]
    for kind in ("pink", "white", "babble"):
        rows[f"{kind} 10 dB"] = [
            Spoken(s.digits, add_noise(s, noise(kind, talkers, len(s.wave), rng), 10.0), s.words, s.sr) for s in noisy
        ]
    found = {name: speech_spans([s.wave for s in spoken], sr) for name, spoken in rows.items()}
    remembered: dict[bytes, np.ndarray] = {}
    model = predictor.model_probabilities

    def cached(pieces: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        keys = [hashlib.sha1(p.tobytes()).digest() for p in pieces]
        new = {k: p for k, p in zip(keys, pieces, strict=True) if k not in remembered}
        if new:
            remembered.update(zip(new, model(list(new.values()), batch_size), strict=True))
        return np.stack([remembered[k] for k in keys]) if keys else model([], batch_size)

    predictor.model_probabilities = cached  # type: ignore[method-assign]
    print("| CUT_WEIGHT | DEPTH_EVEN | LONG_WORD | LENGTH_WEIGHT | " + " | ".join(rows) + " |")
    print("|---|---|---|---|" + "---|" * len(rows))
    for weight, even, long, cost in GRID:
        segment.CUT_WEIGHT, segment.DEPTH_EVEN, segment.LONG_WORD, segment.LENGTH_WEIGHT = weight, even, long, cost
        cells = []
        for name, spoken in rows.items():
            heard = [
                "".join(w.label for w in words) for words, _ in decode(predictor, [s.wave for s in spoken], found[name])
            ]
            r = score([s.digits for s in spoken], heard)
            cells.append(f"DER {100 * r['der']:.1f}%, strings {r['string_accuracy']:.2f}")
        print(f"| {weight:g} | {even:g} | {long:g} | {cost:g} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
