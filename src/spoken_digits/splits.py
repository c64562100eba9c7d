"""Train/test splits of FSDD clips: official, stratified random, leave-one-speaker-out, all.

A split yields folds; each fold is a name plus index arrays into the clip list. In a
leave-one-speaker-out fold no speaker is on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spoken_digits.config import SplitConfig, SplitName
from spoken_digits.errors import ParameterError
from spoken_digits.fsdd import Clip

OFFICIAL_TEST_TAKES = range(5)  # FSDD's README: takes 0-4 are the test set


@dataclass(frozen=True)
class Fold:
    """One train/test division; `test` is empty for the `all` split."""

    name: str
    train: np.ndarray
    test: np.ndarray


def make_folds(clips: Sequence[Clip], cfg: SplitConfig, *, seed: int = 0) -> list[Fold]:
    """The folds of `cfg` over `clips` (one fold except for leave-one-speaker-out)."""
    everything = np.arange(len(clips))
    if cfg.name is SplitName.ALL:
        return [Fold("all", everything, everything[:0])]
    if cfg.name is SplitName.OFFICIAL:
        test = np.array([c.take in OFFICIAL_TEST_TAKES for c in clips])
        return [Fold("official", everything[~test], everything[test])]
    if cfg.name is SplitName.RANDOM:
        train, test = stratified_split(np.array([c.digit for c in clips]), cfg.test_fraction, seed=seed)
        return [Fold("random", train, test)]
    speakers = np.array([c.speaker for c in clips])
    names = sorted({c.speaker for c in clips})  # plain str (numpy's str_ would not survive weights_only loading)
    if cfg.speaker is not None:
        if cfg.speaker not in names:
            raise ParameterError(f"unknown speaker {cfg.speaker!r}; choose one of: {', '.join(names)}")
        names = [cfg.speaker]
    if len(set(speakers)) < 2:
        raise ParameterError("leave-one-speaker-out needs clips from at least two speakers")
    return [Fold(name, everything[speakers != name], everything[speakers == name]) for name in names]


def stratified_split(labels: np.ndarray, fraction: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with about `fraction` of each class held out, shuffled by `seed`."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_held = round(fraction * len(members)) if len(members) > 1 else 0
        held.append(members[:n_held])
        keep.append(members[n_held:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))
