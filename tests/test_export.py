"""ONNX export: one graph from waveforms to logits, dynamic batch and time, equal to torch."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import soundfile as sf
import torch

from conftest import digit_voice
from spoken_digits.apps.cli import main
from spoken_digits.config import SplitConfig
from spoken_digits.evaluation.evaluate import evaluate_checkpoint
from spoken_digits.models import checkpoint
from spoken_digits.recognize.load import load_predictor
from spoken_digits.recognize.predict import OnnxPredictor
from spoken_digits.recognize.torchmodel import Predictor, SpokenDigitClassifier

CASES = {  # model, extra train options: fixed 0.5 s clips and variable-length ones
    "seed_lstm": ["--model", "seed_lstm"],
    "gru-variable": ["--model", "gru", "--duration", "0", "--param", "hidden=16"],
    "bilstm-variable": ["--model", "bilstm", "--duration", "0", "--param", "hidden=16"],
    "cnn": ["--model", "cnn"],
    "crnn-variable": ["--model", "crnn", "--duration", "0", "--param", "hidden=16"],
    "robust": ["--preset", "robust"],
}


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, synthetic_fsdd, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    argv = ["train", "--data", str(synthetic_fsdd), "--out", str(out), "--epochs", "1", "--split", "random"]
    assert main([*argv, *CASES[request.param]]) == 0
    assert main(["export", str(out / "model.pt"), "--onnx", str(out / "model.onnx")]) == 0
    return out


def test_the_graph_matches_torch_on_other_batch_sizes_and_lengths(exported):
    ckpt = checkpoint.load(exported / "model.pt")
    reference = SpokenDigitClassifier(*ckpt.build()).eval()
    session = onnxruntime.InferenceSession(str(exported / "model.onnx"))
    fixed = ckpt.config.audio.n_samples
    for batch, samples in ((1, fixed or 2400), (7, fixed or 9000)):
        waves = torch.randn(batch, samples, generator=torch.Generator().manual_seed(batch)) * 0.2
        lengths = torch.full((batch,), samples) if fixed else torch.linspace(samples // 3, samples, batch).long()
        with torch.no_grad():
            expected = reference(waves, lengths).numpy()
        got = session.run(None, {"waves": waves.numpy(), "lengths": lengths.numpy()})[0]
        assert got.shape == (batch, 10)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_predictions_from_onnx_equal_the_checkpoints(exported, tmp_path, capsys):
    files = []
    for digit in (2, 7):
        files.append(tmp_path / f"{digit}.wav")
        sf.write(files[-1], digit_voice(digit, sr=16000, seconds=0.45), 16000)  # another rate: resampled first
    torch_answers = Predictor.from_file(exported / "model.pt").predict_files(files)
    onnx_answers = load_predictor(exported / "model.onnx").predict_files(files)
    for a, b in zip(torch_answers, onnx_answers, strict=True):
        assert a.digit == b.digit
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
    assert main(["predict", str(exported / "model.onnx"), str(files[0])]) == 0
    assert capsys.readouterr().out.startswith(str(files[0]))


def test_a_foreign_onnx_file_is_refused(tmp_path, capsys):
    (tmp_path / "x.onnx").write_bytes(b"not a model")
    assert main(["predict", str(tmp_path / "x.onnx"), "whatever.wav"]) == 2
    assert "x.onnx: not an ONNX model exported by spoken-digits" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "missing.onnx"), "whatever.wav"]) == 2
    assert "missing.onnx: no such ONNX model file" in capsys.readouterr().err


def test_the_onnx_predictor_is_a_full_predictor(exported):
    """Config, classes and the checkpoint's info travel in the graph; inspect answers, without features."""
    eager, onnx = Predictor.from_file(exported / "model.pt"), load_predictor(exported / "model.onnx")
    assert isinstance(onnx, OnnxPredictor)
    assert (onnx.config, onnx.classes, onnx.info) == (eager.config, eager.classes, eager.info)
    assert onnx.info["fold"] == checkpoint.load(exported / "model.pt").info["fold"]
    wave = digit_voice(4, seed=11)
    expected, seen = eager.inspect(wave), onnx.inspect(wave)
    assert seen.features is None and expected.features is not None
    np.testing.assert_allclose(seen.probabilities, expected.probabilities, atol=1e-5)
    assert (seen.seconds, seen.peak_dbfs, seen.rms_dbfs, seen.warnings) == (
        expected.seconds,
        expected.peak_dbfs,
        expected.rms_dbfs,
        expected.warnings,
    )


@pytest.mark.fsdd
@pytest.mark.filterwarnings("ignore:.*in this model's training split")  # a synthetic model's fold, FSDD's clips
@pytest.mark.parametrize("exported", ["seed_lstm"], indirect=True)  # one model: reuses that fixture instance
def test_evaluate_scores_the_onnx_model_as_the_checkpoint(exported, fsdd_root):
    """`evaluate` takes the .onnx too, and scores it exactly as the .pt it came from."""
    on_pt = evaluate_checkpoint(exported / "model.pt", SplitConfig(), data=fsdd_root, download=False)
    on_onnx = evaluate_checkpoint(exported / "model.onnx", SplitConfig(), data=fsdd_root, download=False)
    assert on_onnx["n_test"] == on_pt["n_test"] == 300
    assert on_onnx["test_accuracy"] == on_pt["test_accuracy"]
    assert on_onnx["confusion"] == on_pt["confusion"]


def test_every_onnx_runtime_session_turns_kleidiai_off(exported):
    """KleidiAI's arm64 kernels have given wrong batch-1 convolutions (the encoder is all convolutions):
    the exported model's session and the speech detector's are made with `mlas.disable_kleidiai` = 1."""
    from spoken_digits import onnxrt
    from spoken_digits.frontend.endpoint import SpeechDetector

    sessions = [OnnxPredictor(exported / "model.onnx").session, SpeechDetector().session]
    assert [s.get_session_options().get_session_config_entry(onnxrt.DISABLE_KLEIDIAI) for s in sessions] == ["1"] * 2
