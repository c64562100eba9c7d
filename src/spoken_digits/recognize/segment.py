"""Strings with a word model: each stretch of speech is cut into words where the sound dips, the cuts
chosen by dynamic programming so that the word model is surest of every piece and the cuts lie in
deep dips. Score: log(probability of the piece's best word) per piece, less a cost for a piece longer than
LONG_WORD, + CUT_WEIGHT * (depth - DEPTH_EVEN) per cut, depth being how far a dip falls towards the
recording's noise floor (0-1).
Works with any word model (a fixed-window one hears each piece through its window); see README,
"Digit strings", for how it compares with a string model (`ctc`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from spoken_digits.frontend import audio
from spoken_digits.recognize.predict import BasePredictor
from spoken_digits.recognize.words import REJECT, Word, piece

FRAME = 0.01  # s: the level is measured in frames this long
MIN_WORD, MAX_WORD = 0.12, 1.1  # s: shortest and longest piece a word may be (FSDD: 0.14-0.95 s with margins)
MIN_DIP_DB = 3.0  # a cut candidate lies at least this far below the louder of its two neighbouring peaks
MIN_SPACING = 0.08  # s between cut candidates
# How much a cut's depth counts against the pieces' log-probabilities, and the depth that is as likely a gap as
# not; both tuned on training takes for the calibrated default (docs/findings/strings/tune.md).
CUT_WEIGHT = 1.0
DEPTH_EVEN = 0.6  # a share of the way down to the floor
# A piece longer than LONG_WORD s costs LENGTH_WEIGHT per second over: two touching words heard as one long,
# sure word is the cutting's commonest error, and a depth alone cannot tell a shallow gap from inside a word.
LONG_WORD, LENGTH_WEIGHT = 0.8, 5.0
FLOOR_DB = -80.0  # the quietest noise floor assumed (a real microphone's is above it)
# A piece the filler class wins counts as this much less likely than a word as sure: without it, a word cut
# in two (a piece of a word being filler, confidently) outscores the whole word (FINDINGS, "Only digits").
FILLER_COST = 0.1


def level_db(y: np.ndarray, sr: int) -> np.ndarray:
    """Level in dB of each FRAME of `y`, smoothed over three frames."""
    return smooth_db(frame_power(y, sr))


def frame_power(y: np.ndarray, sr: int) -> np.ndarray:
    """Mean power of each whole FRAME of `y` (a part frame at the end is left out)."""
    f = max(1, round(FRAME * sr))
    n = len(y) // f
    return np.mean(np.square(y[: n * f].reshape(n, f), dtype=np.float64), axis=1)


def smooth_db(power: np.ndarray) -> np.ndarray:
    """Frame powers in dB, each averaged with its two neighbours first (silence beyond the ends)."""
    if len(power) == 0:
        return np.zeros(0)
    return 10 * np.log10(np.convolve(power, np.ones(3) / 3, mode="same") + 1e-10)


def noise_floor(level: np.ndarray) -> float:
    """The level (dB) of the quiet between words: the 10th percentile of a recording's frame levels, at
    least FLOOR_DB (digital silence would make every dip between words look shallow)."""
    return max(float(np.percentile(level, 10)), FLOOR_DB) if len(level) else FLOOR_DB


def cut_candidates(level: np.ndarray, start: int, end: int, floor: float) -> list[tuple[int, float]]:
    """Frames in (start, end) where a word may end, with the dip's depth as a share of the way from the
    lower of the peaks either side (within MAX_WORD) down to the recording's `floor` (1: down to the floor).
    Dips at least MIN_DIP_DB deep, deepest first, kept MIN_SPACING apart and MIN_WORD from the ends."""
    reach, spacing = round(MAX_WORD / FRAME), max(1, round(MIN_SPACING / FRAME))
    lo, hi = max(start + 1, 1), min(end - 1, len(level) - 1)
    dips = []
    for i in range(lo, hi):
        if level[i] <= level[i - 1] and level[i] <= level[i + 1]:
            left = level[max(start, i - reach) : i].max(initial=-np.inf)
            right = level[i + 1 : min(end, i + reach)].max(initial=-np.inf)
            depth = min(left, right) - level[i]
            if depth >= MIN_DIP_DB:
                dips.append((min(depth / max(min(left, right) - floor, MIN_DIP_DB), 1.0), i))
    kept: list[tuple[int, float]] = []
    for share, i in sorted(dips, reverse=True):
        if all(abs(i - k) >= spacing for k, _ in kept) and min(i - start, end - i) * FRAME >= MIN_WORD:
            kept.append((i, share))
    return sorted(kept)


def deepest_dip(y: np.ndarray, sr: int, floor: float) -> int:
    """The sample of `y` where it is best cut in two: the start of the frame of its deepest dip
    (`cut_candidates`, the largest share of the way down to `floor`), or of its quietest frame if it has none."""
    level = level_db(y, sr)
    if len(level) == 0:
        return len(y)
    cuts = cut_candidates(level, 0, len(level), floor)
    frame = max(cuts, key=lambda cut: (cut[1], -level[cut[0]]))[0] if cuts else int(np.argmin(level))
    return frame * max(1, round(FRAME * sr))


def _segmentations(bounds: Sequence[int], sr: int) -> list[tuple[int, int]]:
    """Pairs (i, j) of bounds that may be one word: MIN_WORD to MAX_WORD apart (neighbours always)."""
    pairs = []
    for i in range(len(bounds) - 1):
        for j in range(i + 1, len(bounds)):
            seconds = (bounds[j] - bounds[i]) / sr
            if j == i + 1 or MIN_WORD <= seconds <= MAX_WORD:
                pairs.append((i, j))
            if seconds > MAX_WORD:
                break
    return pairs


def decode_segments(
    predictor: BasePredictor,
    waves: Sequence[np.ndarray],
    spans: Sequence[Sequence[tuple[int, int]]],
    floors: Sequence[float],
    *,
    offset: float = 0.0,
) -> list[tuple[list[Word], int]]:
    """The words in given stretches of speech (samples [a, b) of each waveform, at the predictor's rate),
    with times `offset` seconds later, and how many pieces were rejected; the model runs once, batched."""
    sr, f = predictor.audio_cfg.sr, max(1, round(FRAME * predictor.audio_cfg.sr))
    plans = []  # per waveform, per stretch: its bounds (samples), cut depths, candidate pieces, first piece
    pieces: list[np.ndarray] = []
    for y, found, floor in zip(waves, spans, floors, strict=True):
        level = level_db(y, sr)
        plan = []
        for a, b in found:
            cuts = cut_candidates(level, max(a, 0) // f, min(b, len(y)) // f, floor)
            bounds = [a, *(c * f for c, _ in cuts), b]
            depths = [1.0, *(d for _, d in cuts), 1.0]
            pairs = _segmentations(bounds, sr)
            plan.append((bounds, depths, pairs, len(pieces)))
            pieces += [piece(y, bounds[i], bounds[j]) for i, j in pairs]
        plans.append(plan)
    n_samples = predictor.audio_cfg.n_samples
    if n_samples is not None:
        pieces = [audio.fix_length(x, n_samples, pad=predictor.audio_cfg.pad) for x in pieces]
    scores = predictor.model_probabilities(pieces)
    out = []
    filler = predictor.filler
    for y, plan in zip(waves, plans, strict=True):
        words: list[Word] = []
        rejected = 0
        for bounds, depths, pairs, first in plan:
            seconds = [(bounds[j] - bounds[i]) / sr for i, j in pairs]
            for i, j, row in _best_cuts(depths, pairs, scores[first : first + len(pairs)], seconds, filler):
                best = int(row.argmax())
                if best == filler or (filler is None and row[best] < REJECT):
                    rejected += 1
                    continue
                start, end = offset + max(bounds[i], 0) / sr, offset + min(bounds[j], len(y)) / sr
                words.append(Word(predictor.classes[best], start, end, float(row[best])))
        out.append((words, rejected))
    return out


def _best_cuts(
    depths: Sequence[float],
    pairs: Sequence[tuple[int, int]],
    scores: np.ndarray,
    seconds: Sequence[float],
    filler: int | None = None,
) -> list[tuple[int, int, np.ndarray]]:
    """The pieces (i, j, class probabilities) that cover the first bound to the last with the highest total
    of log(best probability) per piece (plus log FILLER_COST where the best is the `filler` class, less
    LENGTH_WEIGHT per second of `seconds[k]` over LONG_WORD) + CUT_WEIGHT * (depth - DEPTH_EVEN) per cut made
    (dynamic programming)."""
    best = [-math.inf] * len(depths)
    back: list[tuple[int, int] | None] = [None] * len(depths)
    best[0] = 0.0
    for k, (i, j) in enumerate(pairs):  # pairs are ordered by i, so best[i] is final when it is read
        cut = CUT_WEIGHT * (depths[j] - DEPTH_EVEN) if j < len(depths) - 1 else 0.0
        row = scores[k]
        piece_cost = math.log(FILLER_COST) if filler is not None and int(row.argmax()) == filler else 0.0
        too_long = LENGTH_WEIGHT * max(seconds[k] - LONG_WORD, 0.0)
        total = best[i] + math.log(max(float(row.max()), 1e-9)) + piece_cost + cut - too_long
        if total > best[j]:
            best[j], back[j] = total, (i, k)
    chosen = []
    j = len(depths) - 1
    while j > 0:
        step = back[j]
        assert step is not None  # neighbouring bounds are always a pair, so every bound is reachable
        i, k = step
        chosen.append((i, j, scores[k]))
        j = i
    return chosen[::-1]
