"""Train/test splits of a dataset's clips: its own, stratified random, by speakers, leave-one-speaker-out, all.

A split yields folds; each fold is a name plus index arrays into the clip list. Whenever speakers
are known, `speakers` and `loso` keep every speaker on one side only. `official` is the dataset's
own split (FSDD: takes 0-4 test; Speech Commands: its list files; split folders or a split column);
a dataset without one is split by speakers when they are known and enough of them can hold about the
test fraction (MAX_SHARE caps it), else at random, stratified by class.
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


MAX_SHARE = 2.0  # whole speakers held out may hold up to this many times the asked fraction of the clips
MIN_TRAIN_SPEAKERS = 2  # speakers left to learn from after the held-out ones


class TooFewSpeakers(ParameterError):
    """No set of whole speakers holds about the asked fraction of the clips (see `hold_out_speakers`)."""


def effective(clips: Sequence[Clip], name: SplitName, fraction: float = 0.1) -> SplitName:
    """The split `name` means for these clips: `official` without an own test split becomes speakers when every
    clip's speaker is known and whole speakers can hold about `fraction` of them, else random."""
    if name is SplitName.OFFICIAL and not any(c.split == "test" for c in clips):
        return SplitName.RANDOM if speakers_shortfall(clips, fraction) else SplitName.SPEAKERS
    return name


def speakers_shortfall(clips: Sequence[Clip], fraction: float) -> str:
    """Why a speakers split of `clips` at `fraction` cannot be made ("" when it can)."""
    speakers = np.array([c.speaker for c in clips])
    if not all(speakers):
        return "the speakers of some clips are unknown"
    try:
        hold_out_speakers(speakers, fraction, seed=0)
    except TooFewSpeakers as exc:
        return str(exc)
    return ""


def make_folds(clips: Sequence[Clip], cfg: SplitConfig, *, seed: int = 0) -> list[Fold]:
    """The folds of `cfg` over `clips` (one fold except for leave-one-speaker-out)."""
    everything = np.arange(len(clips))
    name = effective(clips, cfg.name, cfg.test_fraction)
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
        try:
            held = hold_out_speakers(speakers, cfg.test_fraction, seed=seed)
        except TooFewSpeakers as exc:
            raise TooFewSpeakers(
                f"--split speakers: {exc}; use --split random (clips at random, so speakers are shared between "
                "training and test), --split loso (each speaker held out in turn), or record more speakers"
            ) from None
        test = np.isin(speakers, held)
        return [Fold("speakers", everything[~test], everything[test])]
    if cfg.speaker is not None:
        if cfg.speaker not in names:
            raise ParameterError(f"unknown speaker {cfg.speaker!r}; choose one of: {', '.join(names)}")
        names = [cfg.speaker]
    return [Fold(n, everything[speakers != n], everything[speakers == n]) for n in names]


def hold_out_speakers(speakers: np.ndarray, fraction: float, *, seed: int) -> list[str]:
    """Whole speakers to hold out, together holding as close to `fraction` of the clips as a seeded greedy pass
    gets: at least one speaker, at most MAX_SHARE x `fraction` of the clips, and MIN_TRAIN_SPEAKERS left over.

    A TooFewSpeakers error says why when no speaker fits (e.g. 3 equal speakers: one is a third of the clips).
    """
    names, sizes = np.unique(speakers, return_counts=True)
    counts = {str(n): int(c) for n, c in zip(names, sizes, strict=True)}
    total, target = len(speakers), fraction * len(speakers)
    cap = min(MAX_SHARE * fraction, 1.0) * total + 1e-9
    smallest = min(counts, key=counts.__getitem__)
    if len(counts) <= MIN_TRAIN_SPEAKERS or counts[smallest] > cap:
        raise TooFewSpeakers(
            f"{len(counts)} speakers are too few to hold out whole speakers for about {fraction:.0%} of the "
            f"{total} clips: the smallest, {smallest}, has {counts[smallest] / total:.0%} of them (at most "
            f"{min(MAX_SHARE * fraction, 1.0):.0%} is held out, and {MIN_TRAIN_SPEAKERS} speakers must be left "
            "to train on)"
        )
    rng = np.random.default_rng(seed)
    held: list[str] = []
    size = 0
    for i in rng.permutation(len(counts)):
        name = str(names[i])
        grown = size + counts[name]
        if grown > cap or len(counts) - len(held) <= MIN_TRAIN_SPEAKERS:
            continue
        if abs(grown - target) < abs(size - target):
            held.append(name)
            size = grown
    if not held:  # every speaker alone overshoots as much as it helps: the closest one within the cap
        fitting = [str(names[i]) for i in rng.permutation(len(counts)) if counts[str(names[i])] <= cap]
        held = [min(fitting, key=lambda n: abs(counts[n] - target))]
    return sorted(held)


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
