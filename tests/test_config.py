"""Run configuration: every check runs, and the presets have one source of truth."""

from __future__ import annotations

import dataclasses

import pytest

from spoken_digits.config import (
    PRESETS,
    AudioConfig,
    AugmentConfig,
    FeatureConfig,
    ModelConfig,
    RunConfig,
    Scale,
    TrainConfig,
    preset,
)
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


def test_run_config_defaults_are_the_scratch_preset_and_each_parts_defaults_the_clean_one():
    assert RunConfig() == preset("scratch") and RunConfig().preset == "scratch"
    assert RunConfig().audio.vad and RunConfig().audio.trim_db is None  # the speech detector finds the word
    assert RunConfig().augment.noise > 0 and RunConfig().augment.reverb > 0  # trained in noise and rooms
    clean = preset("clean")
    parts = (AudioConfig(), FeatureConfig(), ModelConfig(), TrainConfig(), AugmentConfig())
    assert (clean.audio, clean.features, clean.model, clean.train, clean.augment) == parts
    assert clean.audio.trim_db == 40.0 and not clean.augment.active


def test_a_config_saved_before_the_detector_existed_reads_back_with_the_trim():
    data = preset("clean").to_dict()
    del data["audio"]["vad"], data["augment"]["noise"]  # as written by earlier versions
    assert RunConfig.from_dict(data) == preset("clean")


def test_the_seed_preset_differs_from_the_clean_one_only_where_the_seed_did():
    seed, clean = preset("seed"), preset("clean")
    assert seed.audio == dataclasses.replace(clean.audio, trim_db=None)
    assert seed.features == dataclasses.replace(clean.features, scale=Scale.POWER, standardize=False)
    assert seed.train == dataclasses.replace(clean.train, patience=0, adam_eps=1e-7)
    assert (seed.model, seed.split, seed.augment) == (clean.model, clean.split, clean.augment)


def test_augmentation_shares_and_ranges_are_checked():
    for kwargs, message in [
        ({"noise": 1.5}, "noise is a share of clips"),
        ({"reverb": -0.1}, "reverb is a share of clips"),
        ({"snr_min": 10, "snr_max": 5}, "snr_min <= snr_max"),
        ({"context": 3}, "context must be in"),
        ({"noise_dir": "noise/"}, "noise_dir needs noise > 0"),
    ]:
        with pytest.raises(ParameterError, match=message):
            AugmentConfig(**kwargs)


def test_every_preset_is_labelled_with_its_own_name():
    assert all(cfg.preset == name for name, cfg in PRESETS.items())
    valid = "default, scratch, clean, seed, robust"
    with pytest.raises(ParameterError, match=f"unknown preset 'fast'; choose one of: {valid}"):
        preset("fast")


def test_audio_config_refuses_bad_values():
    with pytest.raises(ParameterError, match="duration must be > 0 s or None"):
        AudioConfig(duration=0)
    with pytest.raises(ParameterError, match="trim_db must be > 0 dB or None"):
        AudioConfig(trim_db=-3)


def test_the_default_preset_is_the_scratch_recipe_on_the_speech_encoder():
    default, scratch = preset("default"), preset("scratch")
    assert default.features.encoder == "speech-embedding" and default.audio.sr == 16000
    assert (default.model, default.audio.vad) == (scratch.model, scratch.audio.vad)
    assert dataclasses.replace(default.augment, views=0, filler=0.0) == scratch.augment  # the same conditions
    assert default.train.val_fraction > 0 and default.train.keep_last  # clips to calibrate on; the last epoch kept
    assert default.augment.filler == 0 and not default.augment.filler_voices  # measured: a filler costs new voices
    assert list(PRESETS)[:2] == ["default", "scratch"]


def test_filler_needs_augmentation_and_a_sane_share():
    with pytest.raises(ParameterError, match="filler clips are made from waveforms: they need augmentation on"):
        AugmentConfig(filler=1.0)
    with pytest.raises(ParameterError, match="filler must be in"):
        AugmentConfig(noise=0.5, filler=-1)
