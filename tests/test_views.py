"""Augmented views made once: K seeded copies of every clip, in a fixed order."""

from __future__ import annotations

import pytest
import torch

from spoken_digits.config import AugmentConfig
from spoken_digits.errors import ParameterError
from spoken_digits.frontend.batches import FeatureSet
from spoken_digits.training.views import augmented_views


def noisy(batch: FeatureSet, generator: torch.Generator) -> FeatureSet:
    """A stand-in augmenter: adds seeded noise and halves the lengths, so copies differ and shapes change."""
    x = batch.x + torch.randn(batch.x.shape, generator=generator)
    return FeatureSet(x[:, :, None], batch.lengths // 2, batch.y)


def test_every_clip_gets_k_different_seeded_copies() -> None:
    clips = FeatureSet(torch.zeros(150, 40), torch.full((150,), 40), torch.arange(150) % 10)
    views = augmented_views(clips, noisy, 3, seed=7)
    assert views.x.shape == (450, 40, 1) and views.lengths.tolist() == [20] * 450
    assert torch.equal(views.y, clips.y.repeat(3))  # copy k of clip i at row k * N + i
    assert not torch.equal(views.x[:150], views.x[150:300])  # the copies differ
    assert torch.equal(views.x, augmented_views(clips, noisy, 3, seed=7).x)  # the same seed, the same copies
    assert not torch.equal(views.x, augmented_views(clips, noisy, 3, seed=8).x)


def test_views_are_bounded() -> None:
    with pytest.raises(ParameterError, match=r"views must be in 0\.\.64"):
        AugmentConfig(views=65)
