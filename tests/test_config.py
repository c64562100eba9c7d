"""Run configuration: every check runs, and the presets have one source of truth."""

from __future__ import annotations

import dataclasses

import pytest

from spoken_digits.config import PRESETS, AudioConfig, FeatureConfig, RunConfig, Scale, preset
from spoken_digits.errors import ParameterError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_fft": 0}, "n_fft must be >= 16, got 0"),
        ({"hop_length": -5}, r"hop_length must be in 1..n_fft \(512\), got -5"),
        ({"hop_length": 1024}, "hop_length must be in 1..n_fft"),
        ({"n_mels": 0}, "n_mels must be >= 1, got 0"),
        ({"fmin": -1.0}, "fmin must be >= 0 Hz"),
        ({"fmin": 500.0, "fmax": 400.0}, "fmax must be above fmin"),
        ({"top_db": 0.0}, "top_db must be > 0"),
        ({"n_mfcc": 81}, "n_mfcc must be in 0..n_mels"),
        ({"n_mfcc": 13, "scale": "power"}, "n_mfcc needs scale db"),
        ({"scale": "loud"}, "unknown scale 'loud'"),
    ],
)
def test_feature_config_refuses_bad_values(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        FeatureConfig(**kwargs)


def test_bad_values_are_refused_when_a_config_is_read_back():
    data = RunConfig().to_dict()
    data["features"]["n_mels"] = 0
    with pytest.raises(ParameterError, match="n_mels must be >= 1"):
        RunConfig.from_dict(data)


def test_the_dataclass_defaults_are_the_default_preset():
    assert RunConfig() == preset("default") and RunConfig().preset == "default"
    assert RunConfig().audio.trim_db == 40.0  # the default preset trims silence before the crop


def test_the_seed_preset_differs_from_the_default_only_where_the_seed_did():
    seed, default = preset("seed"), preset("default")
    assert seed.audio == dataclasses.replace(default.audio, trim_db=None)
    assert seed.features == dataclasses.replace(default.features, scale=Scale.POWER, standardize=False)
    assert seed.train == dataclasses.replace(default.train, patience=0, adam_eps=1e-7)
    assert (seed.model, seed.split, seed.augment) == (default.model, default.split, default.augment)


def test_every_preset_is_labelled_with_its_own_name():
    assert all(cfg.preset == name for name, cfg in PRESETS.items())
    with pytest.raises(ParameterError, match="unknown preset 'fast'; choose one of: default, seed, robust"):
        preset("fast")


def test_audio_config_refuses_bad_values():
    with pytest.raises(ParameterError, match="duration must be > 0 s or None"):
        AudioConfig(duration=0)
    with pytest.raises(ParameterError, match="trim_db must be > 0 dB or None"):
        AudioConfig(trim_db=-3)
