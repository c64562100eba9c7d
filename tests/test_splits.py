"""Official, random, leave-one-speaker-out and all splits over an FSDD-shaped clip list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spoken_digits.config import SplitConfig, SplitName
from spoken_digits.data.clips import Clip as ClipG
from spoken_digits.data.fsdd import Clip, as_clips
from spoken_digits.data.splits import make_folds
from spoken_digits.errors import ParameterError

FSDD_CLIPS = [
    Clip(Path(f"{d}_{s}_{t}.wav"), d, s, t) for s in ("george", "jackson", "theo") for d in range(10) for t in range(50)
]
CLIPS = as_clips(FSDD_CLIPS)


def test_official_split_tests_takes_0_to_4():
    (fold,) = make_folds(CLIPS, SplitConfig(SplitName.OFFICIAL))
    assert len(fold.test) == 3 * 10 * 5 and len(fold.train) == 3 * 10 * 45
    assert {FSDD_CLIPS[i].take for i in fold.test} == {0, 1, 2, 3, 4}
    assert not {FSDD_CLIPS[i].take for i in fold.train} & {0, 1, 2, 3, 4}


def test_loso_holds_whole_speakers_out():
    folds = make_folds(CLIPS, SplitConfig(SplitName.LOSO))
    assert [f.name for f in folds] == ["george", "jackson", "theo"]
    for fold in folds:
        train_speakers = {CLIPS[i].speaker for i in fold.train}
        assert {CLIPS[i].speaker for i in fold.test} == {fold.name} and fold.name not in train_speakers
        assert len(fold.train) + len(fold.test) == len(CLIPS)


def test_loso_one_named_speaker_and_unknown_speaker():
    (fold,) = make_folds(CLIPS, SplitConfig(SplitName.LOSO, speaker="theo"))
    assert fold.name == "theo"
    with pytest.raises(ParameterError, match="unknown speaker 'nobody'; choose one of: george, jackson, theo"):
        make_folds(CLIPS, SplitConfig(SplitName.LOSO, speaker="nobody"))


def test_speaker_needs_loso():
    with pytest.raises(ParameterError, match="only be held out with --split loso"):
        SplitConfig(SplitName.OFFICIAL, speaker="theo")


def test_random_split_is_stratified_seeded_and_disjoint():
    (a,) = make_folds(CLIPS, SplitConfig(SplitName.RANDOM), seed=1)
    (b,) = make_folds(CLIPS, SplitConfig(SplitName.RANDOM), seed=1)
    (c,) = make_folds(CLIPS, SplitConfig(SplitName.RANDOM), seed=2)
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)
    assert not set(a.test) & set(a.train)
    counts = np.bincount([FSDD_CLIPS[i].digit for i in a.test], minlength=10)
    assert (counts == 15).all()  # 10% of each digit's 150 clips


def test_all_trains_on_everything():
    (fold,) = make_folds(CLIPS, SplitConfig(SplitName.ALL))
    assert len(fold.train) == len(CLIPS) and len(fold.test) == 0


def test_unknown_split_lists_the_choices():
    choices = "official, random, speakers, loso, all"
    with pytest.raises(ParameterError, match=f"unknown split 'holdout'; choose one of: {choices}"):
        SplitConfig("holdout")


def _speaker_clips(sizes: dict[str, int]) -> list:
    """Clips of two classes from speakers with the given numbers of clips (no split of their own)."""
    return [
        ClipG(Path(f"{name}_{i}.wav"), str(i % 2), name) for name, size in sizes.items() for i in range(size)
    ]


def _shares(clips: list, fold) -> float:
    return len(fold.test) / len(clips)


@pytest.mark.parametrize("n", [3, 4])
def test_too_few_equal_speakers_are_refused_with_what_to_do(n):
    clips = _speaker_clips({f"s{i}": 30 for i in range(n)})
    with pytest.raises(ParameterError, match=rf"{n} speakers are too few .* about 10% .*--split random.*--split loso"):
        make_folds(clips, SplitConfig(SplitName.SPEAKERS))
    (fold,) = make_folds(clips, SplitConfig(SplitName.OFFICIAL))  # no split of its own: random, not a third
    assert fold.name == "random" and _shares(clips, fold) == pytest.approx(0.1, abs=0.02)


def test_equal_speakers_hold_out_one_when_it_is_within_twice_the_fraction():
    clips = _speaker_clips({f"s{i}": 30 for i in range(6)})  # FSDD-like: one speaker is 17%
    for seed in range(6):
        (fold,) = make_folds(clips, SplitConfig(SplitName.SPEAKERS), seed=seed)
        assert len({clips[i].speaker for i in fold.test}) == 1 and _shares(clips, fold) == pytest.approx(1 / 6)
    held = {make_folds(clips, SplitConfig(SplitName.SPEAKERS), seed=s)[0].test[0] for s in range(6)}
    assert len(held) > 1  # the seed chooses who


@pytest.mark.parametrize("seed", range(8))
def test_a_dominant_speaker_is_never_held_out_and_the_share_stays_near_the_fraction(seed):
    sizes = {"boss": 170, **{f"s{i}": 5 for i in range(6)}}  # 85% of the clips from one speaker
    clips = _speaker_clips(sizes)
    (fold,) = make_folds(clips, SplitConfig(SplitName.SPEAKERS), seed=seed)
    tested = {clips[i].speaker for i in fold.test}
    assert "boss" not in tested and not tested & {clips[i].speaker for i in fold.train}
    assert 0.05 <= _shares(clips, fold) <= 0.15


def test_many_unequal_speakers_approach_the_fraction_and_never_pass_the_cap():
    rng = np.random.default_rng(0)
    sizes = {f"s{i}": int(n) for i, n in enumerate(rng.integers(5, 60, 25))}
    clips = _speaker_clips(sizes)
    for seed in range(10):
        for fraction in (0.1, 0.2):
            (fold,) = make_folds(clips, SplitConfig(SplitName.SPEAKERS, test_fraction=fraction), seed=seed)
            assert abs(_shares(clips, fold) - fraction) <= 0.03, (seed, fraction)
