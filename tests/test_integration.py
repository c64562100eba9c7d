"""The issue's acceptance bars on the real FSDD recordings ($FSDD_ROOT): accuracy, loso, predict."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import soxr

from spoken_digits.config import SplitConfig, SplitName, preset
from spoken_digits.evaluation.evaluate import evaluate_checkpoint
from spoken_digits.evaluation.robustness import benchmark_model
from spoken_digits.recognize.torchmodel import Predictor
from spoken_digits.training.experiment import train_run

pytestmark = pytest.mark.fsdd


@pytest.fixture(scope="module")
def default_run(fsdd_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("default")
    return out, train_run(preset("default"), out, data=fsdd_root, download=False)


def test_default_preset_reaches_99_percent_on_the_official_split(default_run):
    """The speech-encoder default: 0.997 on the official split in README's New voices (seed 0)."""
    out, metrics = default_run
    assert metrics["test_accuracy"] >= 0.99
    assert (metrics["n_train"] + metrics["n_val"], metrics["n_test"]) == (2700, 300)
    assert len(metrics["per_speaker"]) == 6 and len(metrics["per_class"]) == 10
    assert {"metrics.json", "model.pt", "config.json", "log.csv", "confusion.png", "curves.png"} <= {
        p.name for p in out.iterdir()
    }


def test_the_default_model_holds_up_in_noise_and_finds_the_word_in_a_long_recording(default_run, fsdd_root, tmp_path):
    """A quick robustness run (100 of the 300 clips): the README's table has the full one, over 3 seeds."""
    conditions = ["white-10db", "babble-10db", "pad-3s"]
    result = benchmark_model(
        default_run[0] / "model.pt", tmp_path, data=fsdd_root, download=False, conditions=conditions, limit=100
    )
    accuracy = {r["condition"]: r["accuracy"] for r in result["conditions"]}
    # 100 clips: about +-4 points. The calibrated default (5% of training held out) gave 0.83 in babble here.
    assert accuracy["white-10db"] >= 0.9 and accuracy["babble-10db"] >= 0.8 and accuracy["pad-3s"] >= 0.95


@pytest.mark.parametrize("model", ["gru", "crnn"])
def test_gru_and_crnn_reach_97_percent_on_the_clean_preset(fsdd_root, tmp_path, model):
    cfg = dataclasses.replace(preset("clean"), model=dataclasses.replace(preset("clean").model, name=model))
    assert train_run(cfg, tmp_path, data=fsdd_root, download=False)["test_accuracy"] >= 0.97


def test_seed_preset_runs_and_trails_the_fixed_pipeline(fsdd_root, tmp_path, default_run):
    metrics = train_run(preset("seed"), tmp_path, data=fsdd_root, download=False)
    assert metrics["epochs_run"] == 40  # the seed trained a fixed number of epochs, no early stopping
    assert 0.80 <= metrics["test_accuracy"] < default_run[1]["test_accuracy"]  # learns, slowly (README: ~0.85)


def test_loso_runs_all_six_folds(fsdd_root, tmp_path):
    cfg = dataclasses.replace(preset("clean"), split=SplitConfig(SplitName.LOSO))
    metrics = train_run(cfg, tmp_path, data=fsdd_root, download=False)
    speakers = {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
    assert set(metrics["folds"]) == speakers == set(metrics["per_speaker"])
    assert metrics["test_accuracy"] == pytest.approx(np.mean(list(metrics["folds"].values())))
    assert 0.65 <= metrics["test_accuracy"] <= 0.85  # README: 0.67-0.75 over seeds; far below the official split
    assert metrics["n_test"] == 3000


def test_predict_a_48k_24bit_stereo_recording_and_an_fsdd_file(default_run, fsdd_root, tmp_path):
    predictor = Predictor.from_file(default_run[0] / "model.pt")
    files = [
        fsdd_root / "recordings" / f"{d}_{s}_{t}.wav"
        for d, s, t in [(7, "theo", 3), (2, "george", 0), (9, "lucas", 4), (4, "nicolas", 0)]
    ]  # official test takes (the format is under test here, not the hardest take: nicolas's "4" take 1 is one)
    converted = []
    for f in files:
        y, sr = sf.read(f)
        hi = soxr.resample(y, sr, 48000) * 0.4  # quieter, 48 kHz, stereo, with silence either side
        stereo = np.stack([hi, 0.8 * hi], axis=1)
        path = tmp_path / f"{f.stem}_48k.wav"
        sf.write(path, np.concatenate([np.zeros((12000, 2)), stereo, np.zeros((9600, 2))]), 48000, subtype="PCM_24")
        converted.append(path)
    results = predictor.predict_files([*files, *converted])
    assert [r.error for r in results] == [None] * 8
    assert [r.digit for r in results] == ["7", "2", "9", "4"] * 2


def test_same_config_and_seed_give_the_same_metrics(fsdd_root, tmp_path):
    cfg = dataclasses.replace(preset("default"), train=dataclasses.replace(preset("default").train, epochs=3))
    first = train_run(cfg, tmp_path / "a", data=fsdd_root, download=False)
    second = train_run(cfg, tmp_path / "b", data=fsdd_root, download=False)
    same = lambda m: {k: v for k, v in m.items() if k != "seconds"}  # noqa: E731
    assert same(first) == same(second)
    assert (tmp_path / "a" / "log.csv").read_text().count("\n") == 4
    logged = [json.loads((tmp_path / d / "metrics.json").read_text())["test_accuracy"] for d in "ab"]
    assert logged[0] == logged[1]


def test_evaluate_through_the_predict_path_matches_the_runs_own_score(default_run, fsdd_root):
    """Files -> Predictor gives exactly the training run's test score: prediction sees training's features."""
    out, metrics = default_run
    evaluated = evaluate_checkpoint(out / "model.pt", SplitConfig(SplitName.OFFICIAL), data=fsdd_root, download=False)
    assert evaluated["test_accuracy"] == metrics["test_accuracy"]
    assert evaluated["confusion"] == metrics["confusion"]


RECORDINGS = {  # how a new user's recording differs from FSDD: rate, depth, level, silence, channels, noise
    "16k-16bit": (16000, "PCM_16", 1.0, 0.0, 1, None),
    "22k-24bit-quiet-silence": (22050, "PCM_24", 0.05, 1.0, 1, None),
    "44k-float-loud-stereo": (44100, "FLOAT", 2.5, 0.5, 2, None),
    "48k-24bit-stereo-silence-noise": (48000, "PCM_24", 0.5, 1.0, 2, 50.0),
}


@pytest.fixture(scope="module")
def robust_theo(fsdd_root, tmp_path_factory):
    """The robust preset trained without theo: every theo clip is a voice it never heard."""
    out = tmp_path_factory.mktemp("robust")
    cfg = dataclasses.replace(preset("robust"), split=SplitConfig(SplitName.LOSO, speaker="theo"))
    train_run(cfg, out, data=fsdd_root, download=False)
    return out


def _rerecord(y: np.ndarray, sr: int, spec: tuple, rng: np.random.Generator) -> np.ndarray:
    rate, _, gain, silence, channels, snr_db = spec
    y = soxr.resample(y, sr, rate) * gain
    pad = np.zeros(int(silence * rate))
    y = np.concatenate([pad, y, pad])
    if snr_db is not None:  # broadband noise this many dB below the speech's peak RMS
        y = y + rng.normal(0, np.abs(y).max() * 10 ** (-snr_db / 20), len(y))
    y = np.clip(y, -1, 1)
    return np.stack([y, 0.9 * y], axis=1) if channels == 2 else y


@pytest.mark.parametrize("condition", RECORDINGS)
def test_a_new_speaker_is_recognised_as_well_under_other_recording_conditions(
    robust_theo, fsdd_root, tmp_path, condition
):
    predictor = Predictor.from_file(robust_theo / "folds" / "theo" / "model.pt")
    rng = np.random.default_rng(0)
    files = sorted((fsdd_root / "recordings").glob("*_theo_*.wav"))[::5]  # 100 of theo's 500 clips
    rate, subtype = RECORDINGS[condition][:2]
    converted = []
    for f in files:
        y, sr = sf.read(f)
        converted.append(tmp_path / f.name)
        sf.write(converted[-1], _rerecord(y, sr, RECORDINGS[condition], rng), rate, subtype=subtype)
    original = np.mean([r.digit == f.name[0] for r, f in zip(predictor.predict_files(files), files, strict=True)])
    changed = predictor.predict_files(converted)
    assert all(r.error is None for r in changed)
    accuracy = np.mean([r.digit == f.name[0] for r, f in zip(changed, files, strict=True)])
    assert original >= 0.8 and accuracy >= original - 0.05, (original, accuracy)
