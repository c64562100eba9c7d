"""Batched augmentation: speed perturbation is resampling, masks stay inside clips, runs repeat."""

from __future__ import annotations

import torch

from spoken_digits.augment import Augmenter, mask_runs, speed_perturb
from spoken_digits.config import AugmentConfig, FeatureConfig
from spoken_digits.features import Featurizer
from spoken_digits.train import FeatureSet


def test_speed_factor_one_is_the_identity_and_two_takes_every_other_sample():
    waves = torch.randn(2, 100)
    lengths = torch.tensor([100, 60])
    same, same_lengths = speed_perturb(waves, lengths, torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(same[0], waves[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(same[1, :60], waves[1, :60], atol=1e-4, rtol=0)
    assert same_lengths.tolist() == [100, 60] and torch.all(same[1, 60:] == 0)
    fast, fast_lengths = speed_perturb(waves, lengths, torch.tensor([2.0, 2.0]))
    assert fast_lengths.tolist() == [50, 30]
    torch.testing.assert_close(fast[0, :50], waves[0, ::2], atol=1e-4, rtol=0)


def test_slowing_down_interpolates_between_samples():
    ramp = torch.arange(10, dtype=torch.float32)[None]
    slow, lengths = speed_perturb(ramp, torch.tensor([10]), torch.tensor([0.5]))
    assert lengths.tolist() == [20]
    torch.testing.assert_close(slow[0, :19], torch.arange(19, dtype=torch.float32) / 2, atol=1e-4, rtol=0)


def test_masks_blank_at_most_width_and_only_valid_frames():
    x = torch.ones(64, 20, 8)
    lengths = torch.randint(5, 21, (64,))
    g = torch.Generator().manual_seed(0)
    frames = mask_runs(x, lengths, 4, 1, g)
    blanked = (frames == 0).all(dim=2)  # (B, T)
    assert blanked.sum(1).max() <= 4 and blanked.sum() > 0
    assert not any(blanked[i, lengths[i] :].any() for i in range(64))
    bands = mask_runs(x, lengths, 3, 2, g)
    assert (bands == 0).all(dim=1).sum(1).max() <= 3


def test_the_augmenter_repeats_with_the_same_generator_state():
    featurizer = Featurizer(8000, FeatureConfig(n_fft=256, hop_length=80, n_mels=40, n_mfcc=20, cmvn=True))
    featurizer.standardizer = None
    augment = Augmenter(AugmentConfig(speed=0.1, time_mask=5, band_mask=3), featurizer)
    batch = FeatureSet(torch.randn(4, 4000), torch.tensor([4000, 3000, 2000, 3500]), torch.arange(4))
    a = augment(batch, torch.Generator().manual_seed(1))
    b = augment(batch, torch.Generator().manual_seed(1))
    c = augment(batch, torch.Generator().manual_seed(2))
    torch.testing.assert_close(a.x, b.x)
    assert a.x.shape[2] == 20 and not torch.equal(a.lengths, c.lengths)
