"""Your own words end to end: a keyword set in class folders trains, evaluates, predicts, serves and exports."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from tests.conftest import SR, digit_voice

from spoken_digits.apps.cli import main
from spoken_digits.apps.serve import create_app
from spoken_digits.recognize.load import load_predictor

WORDS = {"lights": 1, "music": 4, "stop": 8}  # each word one synthetic voice's vowels
SPEAKERS = ("ann", "bob", "cat", "dan", "eve")


@pytest.fixture(scope="module")
def keywords(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Class folders of three words, five speakers named in the file names, six takes each."""
    root = tmp_path_factory.mktemp("keywords")
    for word, voice in WORDS.items():
        (root / word).mkdir()
        for s, speaker in enumerate(SPEAKERS):
            for take in range(6):
                y = digit_voice(voice, speaker=s, seed=500 * s + 10 * voice + take)
                sf.write(root / word / f"{speaker}_{take}.wav", y, SR, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def keyword_run(keywords: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("keyword-run")
    options = ["--preset", "clean", "--epochs", "12", "--speaker-pattern", "^([a-z]+)_", "--no-download"]
    assert main(["train", "--data", str(keywords), "--out", str(out), *options]) == 0
    return out


def test_trains_on_words_with_a_speaker_disjoint_test(keyword_run):
    metrics = json.loads((keyword_run / "metrics.json").read_text())
    assert metrics["classes"] == ["lights", "music", "stop"]
    assert metrics["split"] == "official" and metrics["split_used"] == "speakers"  # no own split: speakers held out
    tested = set(metrics["per_speaker"])
    assert tested and tested < set(SPEAKERS)
    assert metrics["n_test"] == 18 * len(tested)  # whole speakers: 3 words x 6 takes each
    assert metrics["n_train"] + metrics["n_val"] == 18 * (len(SPEAKERS) - len(tested))  # the rest, nobody twice
    assert metrics["test_accuracy"] >= 0.8


def test_evaluate_predict_and_export_speak_the_words(keyword_run, keywords, tmp_path, capsys):
    model = keyword_run / "model.pt"
    args = ["--data", str(keywords), "--speaker-pattern", "^([a-z]+)_", "--no-download"]
    assert main(["evaluate", str(model), *args]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    trained = json.loads((keyword_run / "metrics.json").read_text())
    assert evaluated["n_test"] == trained["n_test"] and set(evaluated["per_class"]) == set(WORDS)
    assert evaluated["test_accuracy"] == trained["test_accuracy"] and evaluated["seen_in_training"] == 0
    tested = sorted(trained["per_speaker"])[0]  # a voice the model never heard
    for word in WORDS:
        clip = keywords / word / f"{tested}_0.wav"
        assert main(["predict", str(model), str(clip), "--single", "--json"]) == 0
        answer = json.loads(capsys.readouterr().out)[0]
        assert answer["digit"] == word and set(answer["probabilities"]) == set(WORDS)
        assert answer["probability"] == max(answer["probabilities"].values()) > 0.5
        assert main(["predict", str(model), str(clip), "--json"]) == 0  # the string path: one word, the right one
        assert json.loads(capsys.readouterr().out)[0]["text"] == word
    onnx = tmp_path / "keywords.onnx"
    assert main(["export", str(model), "--onnx", str(onnx)]) == 0
    assert list(load_predictor(onnx).classes) == list(load_predictor(model).classes) == ["lights", "music", "stop"]


def test_serve_answers_with_the_words(keyword_run, keywords):
    client = TestClient(create_app(load_predictor(keyword_run / "model.pt")))
    assert json.loads(client.get("/api/model").text)["classes"] == ["lights", "music", "stop"]
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(sf.read(keywords / "music" / "dan_1.wav")[0]), SR, format="WAV")
    answer = client.post("/api/predict", content=buffer.getvalue(), headers={"content-type": "audio/wav"}).json()
    assert answer["label"] == answer["digit"] == "music" and set(answer["probabilities"]) == set(WORDS)


def test_evaluate_refuses_a_dataset_with_classes_the_model_lacks(keyword_run, keywords, tmp_path, capsys):
    other = tmp_path / "other"
    for word in ("lights", "dim"):
        (other / word).mkdir(parents=True)
        for take in range(3):
            sf.write(other / word / f"zed_{take}.wav", digit_voice(2, seed=take), SR, subtype="PCM_16")
    assert main(["evaluate", str(keyword_run / "model.pt"), "--data", str(other), "--no-download"]) == 2
    assert "this dataset also has dim" in capsys.readouterr().err


def test_the_default_speech_encoder_learns_a_keyword_set_too(keywords, tmp_path, capsys):
    """The encoder is not digit-specific: the default preset (detector, speech encoder, multi-condition
    training) on the same three words, tested on speakers it never heard."""
    out = tmp_path / "encoder"
    options = ["--epochs", "12", "--speaker-pattern", "^([a-z]+)_", "--no-download"]
    assert main(["train", "--data", str(keywords), "--out", str(out), *options]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classes"] == ["lights", "music", "stop"] and metrics["test_accuracy"] >= 0.8
    assert load_predictor(out / "model.pt").config.features.encoder == "speech-embedding"
    tested = sorted(metrics["per_speaker"])[0]
    capsys.readouterr()
    assert main(["predict", str(out / "model.pt"), str(keywords / "stop" / f"{tested}_1.wav"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["text"] == "stop"
