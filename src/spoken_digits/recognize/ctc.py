"""Strings with a string model (`spoken-digits train-strings`): the model hears each stretch of speech
whole and gives, every 20 ms, the probability of each word or of "nothing new" (CTC's blank: a word
shows as a spike somewhere inside it); the most probable label per frame, repeats merged and blanks
dropped, is the string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import torch

from spoken_digits.frontend import audio
from spoken_digits.models.nets import SequenceConv1D
from spoken_digits.recognize.torchmodel import Predictor
from spoken_digits.recognize.words import REJECT, Word, piece


@torch.no_grad()
def frame_probabilities(predictor: Predictor, pieces: Sequence[np.ndarray], batch_size: int = 64) -> list[np.ndarray]:
    """Per waveform: (frames, n_classes + 1) probabilities, the last column "no new word" (blank)."""
    featurizer, model = predictor.classifier.featurizer, cast(SequenceConv1D, predictor.classifier.model)
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))  # similar lengths share a batch
    results: dict[int, np.ndarray] = {}
    for start in range(0, len(order), batch_size):
        group = order[start : start + batch_size]
        x, lengths = map(torch.from_numpy, audio.batch([pieces[i] for i in group]))
        feats, frames = featurizer(x.to(predictor.device), lengths.to(predictor.device))
        probs = model(feats, frames).exp().cpu().numpy()
        valid = model.output_lengths(frames).cpu().numpy()
        for k, i in enumerate(group):
            results[i] = probs[k, : int(valid[k])]
    return [results[i] for i in range(len(pieces))]


def greedy(probs: np.ndarray) -> list[tuple[int, int, int, float]]:
    """(label, first frame, last frame + 1, peak probability) of each word in (frames, C + 1) probabilities."""
    blank = probs.shape[1] - 1
    best = probs.argmax(axis=1)
    found: list[tuple[int, int, int, float]] = []
    previous = blank
    for t, label in enumerate(best):
        label = int(label)
        if label != blank and label == previous:
            _, first, _, peak = found[-1]
            found[-1] = (label, first, t + 1, max(peak, float(probs[t, label])))
        elif label != blank:
            found.append((label, t, t + 1, float(probs[t, label])))
        previous = label
    return found


def decode_ctc(
    predictor: Predictor,
    waves: Sequence[np.ndarray],
    spans: Sequence[Sequence[tuple[int, int]]],
    *,
    offset: float = 0.0,
) -> list[tuple[list[Word], int]]:
    """The words in given stretches of speech (samples [a, b) of each waveform at the model's rate), with
    times `offset` s later; each word spans from midway after the previous word's frames to midway
    before the next one's (a stretch's first and last word reach its ends)."""
    sr = predictor.audio_cfg.sr
    frame = 2 * predictor.config.features.hop_length / sr  # s per output frame (the model pairs frames)
    pieces = [piece(y, a, b) for y, found in zip(waves, spans, strict=True) for a, b in found]
    probs = iter(frame_probabilities(predictor, pieces))
    out = []
    for y, found in zip(waves, spans, strict=True):
        words: list[Word] = []
        rejected = 0
        for a, b in found:
            start, end = offset + max(a, 0) / sr, offset + min(b, len(y)) / sr
            heard = greedy(next(probs))
            edges = [a / sr + frame * (heard[k][2] + heard[k + 1][1]) / 2 for k in range(len(heard) - 1)]
            bounds = [start, *(offset + e for e in edges), end]
            for k, (label, _, _, peak) in enumerate(heard):
                if peak < REJECT:
                    rejected += 1
                    continue
                words.append(Word(predictor.classes[label], bounds[k], bounds[k + 1], peak))
        out.append((words, rejected))
    return out
