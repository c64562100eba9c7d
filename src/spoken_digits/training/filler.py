"""Filler clips: speech that is no word of the model, made from the run's own training words, so the
model learns a "not a word" outcome (class FILLER) instead of naming the nearest word.

Three kinds, in turn, each from the training clips only (never validation or test): a word played
backwards (speech-like sound, no word), the first part of one word joined to the last part of a word of
another class (a non-word of real phones), and a piece of one word (what a cut in the wrong place hears).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from spoken_digits.config import AudioConfig, AugmentConfig, RunConfig
from spoken_digits.data import cache, tts
from spoken_digits.data.clips import FILLER
from spoken_digits.errors import ParameterError
from spoken_digits.frontend.batches import FeatureSet, concat
from spoken_digits.training.train import Batches

KINDS = ("reversed", "spliced", "piece")
ACTIVE_DB = 30.0  # a frame within this many dB of a clip's loudest is its speech
FRAME = 160  # samples per level frame (10 ms at 16 kHz)
PIECE = (0.25, 0.45)  # a piece is this share of the word's speech
SPLICE = (0.35, 0.65)  # a splice cuts each word this far into its speech
REPEAT = 2  # times each synthesised digit word is in the training set (against the voices' many filler words)
DIGITS = tuple(str(d) for d in range(10))
STREAMED = (
    "filler clips are made from clips held in memory; this dataset streams from disk: give it an _unknown_ "
    "folder of non-word speech instead, or train with --filler 0 --filler-voices ''"
)


def speech_span(y: torch.Tensor) -> tuple[int, int]:
    """[a, b) samples of `y` from its first to its last frame within ACTIVE_DB of its loudest."""
    n = len(y) // FRAME
    if n == 0:
        return 0, len(y)
    power = y[: n * FRAME].reshape(n, FRAME).square().mean(1)
    loud = torch.nonzero(10 * torch.log10(power + 1e-12) >= 10 * torch.log10(power.max() + 1e-12) - ACTIVE_DB)
    return int(loud[0]) * FRAME, (int(loud[-1]) + 1) * FRAME


def filler_clips(
    waves: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, count: int, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` filler waveforms (count, longest) and their lengths, made from the clips `waves` (N, L) with
    `lengths` and class `labels` (splices join words of two classes); seeded."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    made: list[torch.Tensor] = []
    for k in range(count):
        i = int(rng.integers(n))
        y = waves[i, : int(lengths[i])]
        a, b = speech_span(y)
        kind = KINDS[k % len(KINDS)]
        if kind == "reversed":
            made.append(y.flip(0))
        elif kind == "spliced":
            others = torch.nonzero(labels != labels[i]).flatten()
            j = int(others[int(rng.integers(len(others)))]) if len(others) else i
            z = waves[j, : int(lengths[j])]
            c, d = speech_span(z)
            cut_y = a + int((b - a) * rng.uniform(*SPLICE))
            cut_z = c + int((d - c) * rng.uniform(*SPLICE))
            made.append(torch.cat([y[:cut_y], z[cut_z:]]))
        else:
            width = max(int((b - a) * rng.uniform(*PIECE)), FRAME)
            start = a if rng.random() < 0.5 else max(b - width, a)
            made.append(torch.cat([y[:a], y[start : start + width], y[b:]]))  # the word's margins kept
    out_lengths = torch.tensor([len(m) for m in made], dtype=torch.long)
    out = torch.zeros(count, int(out_lengths.max()) if count else 0, dtype=waves.dtype)
    for row, m in enumerate(made):
        out[row, : len(m)] = m
    return out, out_lengths


def with_classes(classes: tuple[str, ...], augment: AugmentConfig) -> tuple[str, ...]:
    """The model's classes: the dataset's, plus FILLER when filler clips are made and the data has none."""
    made = augment.filler or augment.filler_voices
    return (*classes, FILLER) if made and FILLER not in classes else classes


def spoken_filler(audio: AudioConfig, voices: str, classes: tuple[str, ...], *, seed: int) -> tuple[FeatureSet, ...]:
    """Synthesised everyday words (data/tts.py) through the run's front end, labelled FILLER, as (training,
    validation) waveform sets, a seeded tenth for validation. When the classes include digits ("0"-"9"),
    the same voices say those too, labelled as the digits (training only, REPEAT times each): a synthetic
    voice must be no clue that a word is filler."""
    own = {c.lower() for c in classes}
    words = tts.said(voices, [w for w in tts.TRAIN_WORDS if w not in own])  # never one of the model's words
    names = {tts.DIGIT_WORDS[int(c)]: i for i, c in enumerate(classes) if c in DIGITS}
    digits = tts.said(voices, list(names), per_word=len(tts.voice_list(voices))) if names else []
    store = cache.prepare([*words, *digits], dataclasses.replace(audio, duration=None), progress=False)
    waves, lengths = store.read(np.arange(len(store)))
    labels = torch.tensor([classes.index(FILLER)] * len(words) + [names[p.stem] for p in digits])
    every = FeatureSet(waves, lengths, labels)
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(words)))
    cut = len(words) // 10
    repeats = torch.arange(len(words), len(store)).repeat(REPEAT)
    return every.subset(torch.cat([order[cut:], repeats])), every.subset(order[:cut])


def joined(a: Batches, b: FeatureSet) -> FeatureSet:
    """Two sets of waveforms in memory as one, padded to the longer."""
    if not isinstance(a, FeatureSet):
        raise ParameterError(STREAMED)
    return concat([a, dataclasses.replace(b, y=b.y.to(a.y.dtype))])


def add_filler(clips: Batches, classes: tuple[str, ...], share: float, *, seed: int) -> FeatureSet:
    """`clips` (waveforms in memory) and `share` x (clips per word class) filler clips made from them,
    labelled FILLER (its index in `classes`)."""
    if not isinstance(clips, FeatureSet):
        raise ParameterError(STREAMED)
    label = classes.index(FILLER)
    keep = clips.y != label
    count = round(share * int(keep.sum()) / max(len(classes) - 1, 1))
    if count == 0:
        return clips
    waves, lengths = filler_clips(clips.x[keep], clips.lengths[keep], clips.y[keep], count, seed=seed)
    return joined(clips, FeatureSet(waves, lengths, torch.full((count,), label, dtype=clips.y.dtype)))


def with_filler(train: Batches, val: Batches, classes: tuple[str, ...], cfg: RunConfig) -> tuple[Batches, Batches]:
    """The training and validation waveforms with the run's filler clips: made from the training words
    (`augment.filler`) and synthesised words (`augment.filler_voices`, split between the two)."""
    if cfg.augment.filler:
        train = add_filler(train, classes, cfg.augment.filler, seed=cfg.train.seed)
    if cfg.augment.filler_voices:  # made once per machine
        said = spoken_filler(cfg.audio, cfg.augment.filler_voices, classes, seed=cfg.train.seed)
        train, val = joined(train, said[0]), joined(val, said[1])
    return train, val
