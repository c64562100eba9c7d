"""The torch mel frontend against librosa, batch consistency, and the standardiser."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
import torch

from conftest import digit_voice
from spoken_digits.config import AudioConfig, FeatureConfig, Scale, preset
from spoken_digits.errors import ParameterError
from spoken_digits.frontend import audio
from spoken_digits.frontend.features import (
    Featurizer,
    MelFrontend,
    Standardizer,
    cmvn,
    dct_matrix,
    deltas,
    frame_lengths,
    mel_filterbank,
)

GRID = [  # (sr, n_fft, hop_length, n_mels, fmin, fmax)
    (8000, 512, 256, 80, 0.0, None),  # the seed's settings
    (8000, 256, 80, 40, 0.0, None),
    (8000, 512, 128, 64, 50.0, 3800.0),
    (16000, 1024, 256, 128, 0.0, 8000.0),
    (22050, 2048, 512, 128, 30.0, None),
]


def batch(waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """`audio.batch` as the torch tensors the front end takes."""
    x, lengths = audio.batch(waves)
    return torch.from_numpy(x), torch.from_numpy(lengths)


@pytest.mark.parametrize(("sr", "n_fft", "hop", "n_mels", "fmin", "fmax"), GRID)
def test_filterbank_matches_librosa(sr, n_fft, hop, n_mels, fmin, fmax):
    ours = mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6 * ref.max())


def test_too_many_mels_warns_how_to_fix():
    with pytest.warns(UserWarning, match="lower n_mels or raise n_fft"):
        mel_filterbank(sr=8000, n_fft=128, n_mels=128)


def librosa_mel(y: np.ndarray, sr: int, cfg: FeatureConfig) -> np.ndarray:
    """librosa's mel spectrogram of one clip as (T, n_mels), power or dB against the clip's peak."""
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax
    )
    if cfg.scale is Scale.DB:
        mel = librosa.power_to_db(mel, ref=np.max, top_db=cfg.top_db)
    return mel.T


def assert_parity(waves: list[np.ndarray], sr: int, cfg: FeatureConfig) -> None:
    x, lengths = batch(waves)
    feats, frames = MelFrontend(sr, cfg)(x, lengths)
    for i, y in enumerate(waves):
        ref = librosa_mel(y, sr, cfg)
        assert int(frames[i]) == ref.shape[0]
        got = feats[i, : frames[i]].numpy()
        if cfg.scale is Scale.POWER:
            assert np.abs(got - ref).max() <= 1e-5 * ref.max()
        else:
            assert np.abs(got - ref).max() <= 0.01  # dB; float32 rounding near the -80 dB floor


@pytest.mark.parametrize("scale", [Scale.POWER, Scale.DB])
@pytest.mark.parametrize(("sr", "n_fft", "hop", "n_mels", "fmin", "fmax"), GRID)
def test_frontend_matches_librosa_on_a_batch_of_unequal_clips(sr, n_fft, hop, n_mels, fmin, fmax, scale):
    cfg = FeatureConfig(n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=fmin, fmax=fmax, scale=scale)
    waves = [digit_voice(d, sr=sr, seed=d, seconds=0.2 + 0.1 * d) for d in range(4)]
    assert_parity(waves, sr, cfg)


@pytest.mark.fsdd
@pytest.mark.parametrize("scale", [Scale.POWER, Scale.DB])
@pytest.mark.parametrize(("sr", "n_fft", "hop", "n_mels", "fmin", "fmax"), GRID[:3])
def test_frontend_matches_librosa_on_real_fsdd_clips(fsdd_root, sr, n_fft, hop, n_mels, fmin, fmax, scale):
    files = sorted((fsdd_root / "recordings").glob("*.wav"))[::150]  # 20 clips, every speaker and digit
    waves = [librosa.load(f, sr=None)[0] for f in files]
    cfg = FeatureConfig(n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=fmin, fmax=fmax, scale=scale)
    assert_parity(waves, sr, cfg)


def test_seed_layout_is_16_frames_by_80_mels():
    x, lengths = batch([np.random.default_rng(0).standard_normal(4000).astype(np.float32)])
    feats, frames = MelFrontend(8000, FeatureConfig())(x, lengths)
    assert feats.shape == (1, 16, 80) and frames.tolist() == [16]  # (N, T, n_mels): row = frame


def test_a_clip_gets_the_same_features_alone_and_in_a_padded_batch():
    short, long = digit_voice(2, seed=3, seconds=0.25), digit_voice(8, seed=4, seconds=0.6)
    fe = MelFrontend(8000, FeatureConfig())
    alone, n = fe(*batch([short]))
    together, frames = fe(*batch([short, long]))
    assert frames[0] == n[0]
    torch.testing.assert_close(together[0, : n[0]], alone[0], rtol=0, atol=1e-4)


def test_db_is_per_clip_so_gain_does_not_change_it():
    y = digit_voice(4, seed=5)[800:2400]  # inside the voice: no digital silence, whose dB has no level to keep
    fe = MelFrontend(8000, FeatureConfig())
    loud, _ = fe(*batch([y]))
    quiet, _ = fe(*batch([0.01 * y]))
    torch.testing.assert_close(loud, quiet, rtol=0, atol=1e-3)
    assert float(loud.max()) == 0.0 and float(loud.min()) >= -80.0


def test_frame_count_is_librosas():
    assert frame_lengths(torch.tensor([4000, 255, 256, 18262]), 256).tolist() == [16, 1, 2, 72]


def test_standardizer_uses_valid_frames_only_and_zeroes_padding():
    x = torch.zeros(2, 4, 3)
    x[0, :2] = torch.tensor([[1.0, 2.0, 3.0], [3.0, 6.0, 9.0]])
    x[1, :2] = torch.tensor([[1.0, 2.0, 3.0], [3.0, 6.0, 9.0]])
    x[:, 2:] = 100.0  # padding that must not be counted
    lengths = torch.tensor([2, 2])
    z = Standardizer(3).fit(x, lengths)(x, lengths)
    torch.testing.assert_close(z[:, :2].mean(dim=(0, 1)), torch.zeros(3))
    assert z[:, 2:].abs().sum() == 0


def test_featurizer_without_standardizer_passes_features_through():
    cfg = FeatureConfig(scale=Scale.POWER, standardize=False)
    featurizer = Featurizer(8000, cfg)
    assert featurizer.standardizer is None
    x, lengths = batch([digit_voice(1, seed=1)])
    torch.testing.assert_close(featurizer(x, lengths)[0], featurizer.frontend(x, lengths)[0])


def test_cepstra_match_librosa_mfcc_of_the_same_db_bands():
    db = np.random.default_rng(0).normal(-40, 10, (40, 30)).astype(np.float32)  # (n_mels, frames)
    ref = librosa.feature.mfcc(S=db, n_mfcc=13)  # (13, frames)
    ours = torch.from_numpy(db.T) @ dct_matrix(40, 13)  # (frames, 13)
    np.testing.assert_allclose(ours.numpy().T, ref, rtol=0, atol=1e-3)


def test_cmvn_gives_each_clip_zero_mean_unit_variance_over_its_own_frames():
    x = torch.randn(3, 10, 4, generator=torch.Generator().manual_seed(0)) * 5 + 7
    lengths = torch.tensor([10, 6, 3])
    z = cmvn(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        valid = z[i, :n]
        torch.testing.assert_close(valid.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
        torch.testing.assert_close(valid.std(0, unbiased=False), torch.ones(4), atol=1e-2, rtol=0)  # eps 1e-3
        assert torch.all(z[i, n:] == 0)
    louder = cmvn(x * 10 + 3, lengths)  # level and offset are removed
    torch.testing.assert_close(louder, z, atol=1e-2, rtol=0)  # up to the eps in the divisor


@pytest.mark.parametrize(
    ("layout", "shape"), [("time-major", (2, 16, 80)), ("swapped", (2, 80, 16)), ("reshaped", (2, 16, 80))]
)
def test_layouts_hand_the_model_the_right_or_the_wrong_matrix(layout, shape):
    cfg = dataclasses.replace(preset("clean"), features=FeatureConfig(layout=layout, standardize=False))
    featurizer = Featurizer(8000, cfg.features)
    waves = torch.from_numpy(np.stack([digit_voice(3, seconds=0.3)[:4000], digit_voice(5, seconds=0.3)[:4000]]))
    waves = torch.nn.functional.pad(waves, (0, 4000 - waves.shape[1]))
    x, frames = featurizer(waves, torch.tensor([4000, 4000]))
    right, _ = Featurizer(8000, FeatureConfig(standardize=False))(waves, torch.tensor([4000, 4000]))
    assert tuple(x.shape) == shape and cfg.n_features == shape[2] and frames.tolist() == [shape[1]] * 2
    if layout == "swapped":
        torch.testing.assert_close(x, right.transpose(1, 2))
    if layout == "reshaped":
        torch.testing.assert_close(x, right.transpose(1, 2).reshape(2, 16, 80))
        assert not torch.equal(x, right)


def test_a_wrong_layout_needs_fixed_length_clips():
    with pytest.raises(ParameterError, match="fixed clip duration"):
        dataclasses.replace(preset("clean"), audio=AudioConfig(duration=None), features=FeatureConfig(layout="swapped"))
    with pytest.raises(ParameterError, match="n_mfcc needs scale db"):
        FeatureConfig(n_mfcc=13, scale="power")


def test_deltas_are_central_slopes_with_repeated_edges_and_zero_padding():
    x = torch.tensor([[[0.0], [1.0], [4.0], [9.0], [0.0]]])  # one clip, 4 valid frames of t^2, then padding
    d = deltas(x, torch.tensor([4]))
    assert d[0, :, 0].tolist() == [0.5, 2.0, 4.0, 2.5, 0.0]
