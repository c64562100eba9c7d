"""Can a word model's own scores tell other speech from digits? One piece per clip, one run.

    PYTHONPATH=. python docs/findings/nondigits/openset.py MODEL... > docs/findings/nondigits/openset.md

Keep: FSDD official test digits, and the ten digits said by every espeak-ng voice (voices never trained on).
Reject: everyday words (benchmarks.nondigits.WORDS) said by the espeak-ng, flite and festival voices, FSDD
test words reversed, and test speakers' two-word splices. Each clip is endpointed as `--single` does, and
scored by the calibrated maximum probability, the maximum logit, the energy (log-sum-exp of the digit
logits), the margin between the two best, and for a filler model 1 - p(filler). The threshold keeps 98% of
the espeak-ng digits; the table gives the share of each other kind that passes it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from benchmarks.nondigits import WORDS, said, splice_pool, voices
from benchmarks.strings import Builder, official_test

from spoken_digits.data import fsdd, tts
from spoken_digits.data.splits import Fold
from spoken_digits.frontend import audio
from spoken_digits.recognize.predict import BasePredictor

KEEP = 0.98  # of the espeak-ng digits


def clips(builder: Builder, fold: Fold, all_clips: list[fsdd.Clip], sr: int) -> dict[str, list[np.ndarray]]:
    """Every kind of clip, keep kinds first."""
    found = voices().split(",")
    sets: dict[str, list[np.ndarray]] = {}
    test = [all_clips[i] for i in fold.test]
    with tempfile.TemporaryDirectory() as tmp:
        sets["fsdd-digits"] = [builder.wave(c) for c in test]
        sets["espeak-digits"] = [
            y for v in found if v.startswith("espeak:") for y in said(v, tts.DIGIT_WORDS, Path(tmp), sr)
        ]
        for engine in ("espeak", "flite", "festival"):
            mine = ",".join(v for v in found if v.startswith(engine + ":"))
            sets[f"{engine}-words"] = said(mine, WORDS, Path(tmp), sr)
    sets["reversed"] = [builder.wave(c)[::-1].copy() for c in test]
    sets["splices"] = splice_pool(builder, np.random.default_rng(1))
    return sets


def logits(p: BasePredictor, waves: list[np.ndarray]) -> np.ndarray:
    """The model's logits for each clip that holds speech, endpointed as --single does."""
    found = audio.find_words(waves, p.audio_cfg)
    names = [str(i) for i in range(len(waves))]
    prepared = [r for r in audio.prepare_all(waves, p.audio_cfg, names=names, found=found) if isinstance(r, np.ndarray)]
    x, lengths = audio.batch(prepared)
    return np.concatenate([p.logits(x[i : i + 256], lengths[i : i + 256]) for i in range(0, len(prepared), 256)])


def scores(p: BasePredictor, z: np.ndarray) -> dict[str, np.ndarray]:
    """Higher = more like a digit, per score."""
    digits = z[:, :10]
    probabilities = p.calibrated(z)
    top2 = np.sort(digits, axis=1)[:, -2:]
    out = {
        "max probability": probabilities[:, :10].max(1),
        "max logit": digits.max(1),
        "energy": np.log(np.exp(digits - top2[:, 1:]).sum(1)) + top2[:, 1],
        "margin": top2[:, 1] - top2[:, 0],
    }
    if p.filler is not None:
        out["1 - p(filler)"] = 1 - probabilities[:, p.filler]
    return out


def main() -> None:
    torch.set_num_threads(1)
    predictors, sr, all_clips, fold, builder = official_test(sys.argv[1:], None)
    sets = clips(builder, fold, all_clips, sr)
    others = [k for k in sets if k not in ("fsdd-digits", "espeak-digits")]
    print("| model | score | fsdd-digits kept | " + " | ".join(f"{k} passed" for k in others) + " |")
    print("|---|---|---:|" + "---:|" * len(others))
    for name, p in predictors.items():
        by_kind = {k: scores(p, logits(p, waves)) for k, waves in sets.items()}
        for score in by_kind["fsdd-digits"]:
            bar = np.quantile(by_kind["espeak-digits"][score], 1 - KEEP)
            cells = [np.mean(by_kind[k][score] >= bar) for k in ["fsdd-digits", *others]]
            label = Path(name).parent.name or name
            print(f"| {label} | {score} | " + " | ".join(f"{c:.2f}" for c in cells) + " |", flush=True)
    print(f"\nThreshold per model and score: the one keeping {KEEP:.0%} of the digits said by espeak-ng voices.")


if __name__ == "__main__":
    main()
