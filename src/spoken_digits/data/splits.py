"""Train/test splits of a dataset's clips: its own, stratified random, by speakers, leave-one-speaker-out, all.

A split yields folds; each fold is a name plus index arrays into the clip list. Whenever speakers
are known, `speakers` and `loso` keep every speaker on one side only. `official` is the dataset's
own split (FSDD: takes 0-4 test; Speech Commands: its list files; split folders or a split column);
a dataset without one is split by speakers when they are known, else at random, stratified by class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spoken_digits.config import SplitConfig, SplitName
from spoken_digits.data.clips import Clip
from spoken_digits.errors import DatasetError, ParameterError


@dataclass(frozen=True)
class Fold:
    """One train/test division; `test` is empty for the `all` split."""

    name: str
    train: np.ndarray
    test: np.ndarray


def effective(clips: Sequence[Clip], name: SplitName) -> SplitName:
    """The split `name` means for these clips: `official` without an own test split becomes speakers or random."""
    if name is SplitName.OFFICIAL and not any(c.split == "test" for c in clips):
        return (
            SplitName.SPEAKERS
            if all(c.speaker for c in clips) and len({c.speaker for c in clips}) >= 3
            else (SplitName.RANDOM)
        )
    return name


def make_folds(clips: Sequence[Clip], cfg: SplitConfig, *, seed: int = 0) -> list[Fold]:
    """The folds of `cfg` over `clips` (one fold except for leave-one-speaker-out)."""
    everything = np.arange(len(clips))
    name = effective(clips, cfg.name)
    if name is SplitName.ALL:
        return [Fold("all", everything, everything[:0])]
    if name is SplitName.OFFICIAL:
        test = np.array([c.split == "test" for c in clips])
        return [Fold("official", everything[~test], everything[test])]
    if name is SplitName.RANDOM:
        labels = np.unique([c.label for c in clips], return_inverse=True)[1]
        train, test = stratified_split(labels, cfg.test_fraction, seed=seed)
        return [Fold("random", train, test)]
    speakers = np.array([c.speaker for c in clips])
    if not all(speakers):
        unknown = next(c.path for c in clips if not c.speaker)
        raise DatasetError(
            f"--split {name.value} needs every clip's speaker, and {unknown} has none: add a speaker column "
            "to the manifest or give --speaker-pattern REGEX (e.g. '^(.+?)_' for alice_01.wav)"
        )
    names = sorted(set(speakers.tolist()))  # plain str (numpy's str_ would not survive weights_only loading)
    if len(names) < 2:
        raise ParameterError(f"--split {name.value} needs clips from at least two speakers; all are {names[0]!r}")
    if name is SplitName.SPEAKERS:
        held = speaker_split(speakers, names, cfg.test_fraction, seed=seed)
        test = np.isin(speakers, held)
        return [Fold("speakers", everything[~test], everything[test])]
    if cfg.speaker is not None:
        if cfg.speaker not in names:
            raise ParameterError(f"unknown speaker {cfg.speaker!r}; choose one of: {', '.join(names)}")
        names = [cfg.speaker]
    return [Fold(n, everything[speakers != n], everything[speakers == n]) for n in names]


def speaker_split(speakers: np.ndarray, names: list[str], fraction: float, *, seed: int) -> list[str]:
    """Speakers to hold out, drawn in a seeded order until they hold about `fraction` of the clips (at least one
    speaker, never all)."""
    rng = np.random.default_rng(seed)
    counts = {n: int(c) for n, c in zip(*np.unique(speakers, return_counts=True), strict=True)}
    held: list[str] = []
    total = 0
    for i in rng.permutation(len(names)):
        if total >= fraction * len(speakers) or len(held) == len(names) - 1:
            break
        held.append(names[i])
        total += counts[names[i]]
    return held


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


def check_duplicates(clips: Sequence[Clip], digests: Sequence[str], folds: Sequence[Fold]) -> None:
    """The same recording (identical bytes) on both sides of a fold would be scored on what the model
    trained on: an error naming the pairs."""
    for fold in folds:
        trained = {digests[i]: i for i in fold.train}
        pairs = [f"{clips[trained[digests[j]]].path} = {clips[j].path}" for j in fold.test if digests[j] in trained]
        if pairs:
            shown = "; ".join(pairs[:5]) + (f" ... and {len(pairs) - 5} more" if len(pairs) > 5 else "")
            raise DatasetError(
                f"{len(pairs)} test file(s) of fold {fold.name} are byte-identical to training files "
                f"(training = test): {shown}; remove the copies"
            )
