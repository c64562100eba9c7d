"""Batched augmentation: speed perturbation is resampling, masks stay inside clips, runs repeat."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spoken_digits import audio
from spoken_digits.augment import Augmenter, mask_runs, speed_perturb
from spoken_digits.config import AudioConfig, AugmentConfig, FeatureConfig, Pad
from spoken_digits.features import Featurizer, fix_lengths
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
    augment = Augmenter(AugmentConfig(speed=0.1, time_mask=5, band_mask=3), featurizer, AudioConfig(duration=None))
    batch = FeatureSet(torch.randn(4, 4000), torch.tensor([4000, 3000, 2000, 3500]), torch.arange(4))
    a = augment(batch, torch.Generator().manual_seed(1))
    b = augment(batch, torch.Generator().manual_seed(1))
    c = augment(batch, torch.Generator().manual_seed(2))
    torch.testing.assert_close(a.x, b.x)
    assert a.x.shape[2] == 20 and not torch.equal(a.lengths, c.lengths)


@pytest.mark.parametrize("pad", list(Pad))
def test_the_batched_length_rule_equals_fix_length_clip_by_clip(pad):
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (1, 300, 399, 400, 401, 900)]
    waves, lengths = audio.batch(clips)
    fixed, fixed_lengths = fix_lengths(waves, lengths, 400, pad=pad)
    expected = np.stack([audio.fix_length(c, 400, pad=pad) for c in clips])
    np.testing.assert_array_equal(fixed.numpy(), expected)
    assert fixed_lengths.tolist() == [400] * len(clips)


def test_speed_perturbed_training_clips_get_the_evaluation_shape():
    """The length rule applies after augmentation: every training clip has the frames an evaluation clip has."""
    cfg = AudioConfig(duration=0.5)  # 4,000 samples -> 16 frames at hop 256
    featurizer = Featurizer(8000, FeatureConfig())
    featurizer.standardizer = None
    augment = Augmenter(AugmentConfig(speed=0.2), featurizer, cfg)
    natural = FeatureSet(torch.randn(64, 6000), torch.randint(2000, 6001, (64,)), torch.zeros(64, dtype=torch.long))
    out = augment(natural, torch.Generator().manual_seed(0))
    evaluation, frames = featurizer(*fix_lengths(natural.x, natural.lengths, 4000))
    assert out.x.shape == evaluation.shape == (64, 16, 80)
    assert out.lengths.tolist() == frames.tolist() == [16] * 64
