"""Batched augmentation: speed is resampling, noise lands at its SNR, rooms, bands and clipping do what they say,
masks stay inside clips, runs repeat."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spoken_digits.config import AudioConfig, AugmentConfig, FeatureConfig, Pad, RunConfig
from spoken_digits.frontend import audio
from spoken_digits.frontend.augment import (
    NOISE_KINDS,
    REVERB_TAIL,
    Augmenter,
    add_context,
    babble,
    band_limit,
    colored_noise,
    mask_runs,
    mix,
    overdrive,
    reverberate,
    speed_perturb,
)
from spoken_digits.frontend.batches import FeatureSet
from spoken_digits.frontend.features import Featurizer, fix_lengths
from spoken_digits.frontend.rooms import room_responses

SR = 8000


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
    waves, lengths = map(torch.from_numpy, audio.batch(clips))
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


def test_context_moves_each_word_into_silence_of_its_own_length():
    waves, lengths = torch.ones(2, 5), torch.tensor([5, 3])
    out, new = add_context(waves, lengths, torch.tensor([2, 0]), torch.tensor([1, 4]))
    assert new.tolist() == [8, 7] and out.shape == (2, 8)
    assert out[0].tolist() == [0, 0, 1, 1, 1, 1, 1, 0] and out[1].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]


def test_noise_is_mixed_at_the_snr_asked_measured_over_the_word():
    g = torch.Generator().manual_seed(0)
    canvas = torch.zeros(3, 3000)
    canvas[:, 1000:2000] = torch.randn(3, 1000, generator=g)
    lengths = torch.tensor([3000, 3000, 2500])
    noise = colored_noise(3, 3000, 1.0, g)
    snr = torch.tensor([0.0, 12.0, float("inf")], dtype=torch.float64)
    mixed = mix(canvas, lengths, noise, snr, torch.tensor([1000] * 3), torch.tensor([1000] * 3))
    added = mixed - canvas
    word = slice(1000, 2000)
    measured = 10 * torch.log10(canvas[:2, word].pow(2).mean(1) / added[:2, word].pow(2).mean(1))
    torch.testing.assert_close(measured, torch.tensor([0.0, 12.0]), atol=1e-3, rtol=0)
    assert added[:2, :1000].abs().sum() > 0  # the noise runs before the word too
    assert torch.equal(mixed[2], canvas[2])  # infinite SNR: no noise


def test_colored_noise_has_unit_rms_and_its_slope():
    g = torch.Generator().manual_seed(0)
    for exponent, octave_db in ((0.0, 0.0), (1.0, 3.0), (2.0, 6.0)):
        x = colored_noise(64, 8000, exponent, g)
        torch.testing.assert_close(x.pow(2).mean(1), torch.ones(64), atol=1e-4, rtol=0)
        psd = torch.fft.rfft(x).abs().pow(2).mean(0)  # bin k is k Hz (8000 samples at 8 kHz)
        drop = 10 * torch.log10(psd[900:1100].mean() / psd[1800:2200].mean())
        assert abs(float(drop) - octave_db) < 0.5


def test_rooms_reverberate_only_the_chosen_clips_and_add_a_tail():
    waves, lengths = torch.randn(2, 800), torch.tensor([800, 600])
    delta = torch.zeros(1, 100)
    delta[0, 0] = 1.0
    out, new = reverberate(waves, lengths, delta, torch.tensor([0, -1]), SR)
    tail = round(REVERB_TAIL * SR)
    assert new.tolist() == [800 + tail, 600] and out.shape == (2, 800 + tail)
    torch.testing.assert_close(out[0, :800], waves[0], atol=1e-5, rtol=0)  # a direct path only: the same clip
    assert torch.equal(out[1, :600], waves[1, :600]) and not out[1, 600:].any()


def test_simulated_rooms_have_unit_energy_and_start_at_the_direct_path():
    rooms = room_responses(SR)
    assert rooms.shape[0] == 40 and np.allclose((rooms**2).sum(1), 1, atol=1e-4)
    assert np.all(np.abs(rooms).argmax(1) <= round(0.002 * SR))


def test_the_telephone_band_removes_a_hum_and_keeps_a_vowel_tone():
    t = torch.arange(4000) / SR
    hum, tone = torch.sin(2 * torch.pi * 100 * t), torch.sin(2 * torch.pi * 1000 * t)
    out = band_limit(torch.stack([hum, tone, hum]), torch.tensor([True, True, False]), SR, 300.0, 3400.0)
    middle = slice(500, 3500)
    assert out[0, middle].pow(2).mean() < 1e-3 * hum[middle].pow(2).mean()  # -30 dB or more
    torch.testing.assert_close(out[1, middle], tone[middle], atol=0.02, rtol=0)
    assert torch.equal(out[2], hum)


def test_overdrive_clips_the_chosen_clips_at_full_scale():
    waves = torch.randn(2, 1000) * 0.1
    out = overdrive(waves, torch.tensor([True, False]), torch.tensor([3.0, 3.0]))
    assert out[0].abs().max() == 1.0 and (out[0].abs() == 1).float().mean() > 0.01
    assert torch.equal(out[1], waves[1])


def test_the_default_augmentation_repeats_and_keeps_every_clip_inside_its_length():
    cfg = RunConfig()
    featurizer = Featurizer(SR, cfg.features)
    augment = Augmenter(cfg.augment, featurizer, cfg.audio)
    g = torch.Generator().manual_seed(0)
    batch = FeatureSet(torch.randn(16, 4000, generator=g) * 0.1, torch.randint(2000, 4001, (16,), generator=g),
                       torch.zeros(16, dtype=torch.long))  # fmt: skip
    a = augment(batch, torch.Generator().manual_seed(1))
    b = augment(batch, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a.x, b.x)
    assert torch.isfinite(a.x).all() and a.x.shape[2] == cfg.n_features
    assert (a.lengths >= 1).all() and int(a.lengths.max()) <= a.x.shape[1]


def test_noise_files_are_mixed_in_when_given():
    cfg = AugmentConfig(noise=1.0, snr_min=0.0, snr_max=0.0)
    featurizer = Featurizer(SR, RunConfig().features)
    hum = np.sin(2 * np.pi * 48 * np.arange(SR) / SR).astype(np.float32)  # only the file has energy at 48 Hz
    augment = Augmenter(cfg, featurizer, AudioConfig(duration=None, trim_db=None), noises=[hum])
    kinds = torch.full((4,), len(NOISE_KINDS))
    made = augment._noise(kinds, torch.randn(4, 2000), 2000, torch.Generator().manual_seed(0))
    spectrum = torch.fft.rfft(made).abs().pow(2)  # bin k is 4k Hz for 2000 samples at 8 kHz
    assert (spectrum[:, 12] / spectrum.sum(1) > 0.99).all()


def test_the_augmenter_puts_about_its_share_of_clips_in_rooms_of_many_kinds():
    augment = Augmenter(
        AugmentConfig(reverb=0.5), Featurizer(SR, RunConfig().features), AudioConfig(duration=None, trim_db=None)
    )
    waves = torch.zeros(400, 1000)
    waves[:, 0] = 1.0  # an impulse: each reverberated clip is its room's response
    out = augment(FeatureSet(waves, torch.full((400,), 1000), torch.zeros(400, dtype=torch.long)),
                  torch.Generator().manual_seed(0))  # fmt: skip
    longer = out.lengths > out.lengths.min()  # a room adds REVERB_TAIL seconds of decay
    assert 150 < int(longer.sum()) < 250  # about half the clips
    rooms = {tuple(out.x[i, :20].round(decimals=2).flatten().tolist()) for i in range(400) if longer[i]}
    assert len(rooms) > 20  # many different rooms, not one or two


def test_a_clips_babble_never_holds_the_clip_itself():
    """Each clip a pure tone of its own: the babble of a clip has no energy at the clip's own frequency
    (and every other clip's tone may be there). A batch of one has no one else to babble."""
    batch, width = 8, 256
    t = torch.arange(width, dtype=torch.float64)
    words = torch.stack([torch.sin(2 * torch.pi * 4 * (i + 1) * t / width) for i in range(batch)])
    own = torch.arange(batch)
    for seed in range(20):
        spectrum = torch.fft.rfft(babble(words, width, torch.Generator().manual_seed(seed))).abs()
        assert spectrum[own, 4 * (own + 1)].max() < 1e-6 * spectrum.max(), f"seed {seed}"
        heard = spectrum[:, 4 * (own + 1)] > 1e-3 * spectrum.max()  # (clip, talker)
        assert heard.sum(1).min() >= 1
    assert not babble(words[:1], width, torch.Generator().manual_seed(0)).any()
