"""The files that ship in the package: the detector and the pretrained model, checked, made by the documented
command, and used when no model is given."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from spoken_digits import pretrained
from spoken_digits.apps import commands
from spoken_digits.apps.cli import build_parser, main
from spoken_digits.apps.export import package_model
from spoken_digits.errors import CheckpointError, ParameterError
from spoken_digits.recognize.load import load_predictor


def test_the_card_records_the_shipped_file_and_the_command_that_made_it():
    card = pretrained.card()
    data = (pretrained.folder() / pretrained.MODEL).read_bytes()
    assert card["sha256"] == hashlib.sha256(data).hexdigest() and card["bytes"] == len(data)
    assert card["made_by"].startswith("make pretrained")
    # `make pretrained` runs `train --split all`: its config is the card's, so rerunning it remakes this recipe
    args = build_parser().parse_args(["train", "--split", "all", "--out", "runs/pretrained"])
    assert commands._run_config(args).to_dict() == card["config"]
    predictor = load_predictor()
    assert predictor.classes == card["classes"] == [str(d) for d in range(10)]
    assert predictor.temperature == pytest.approx(card["temperature"]) and 0.25 < predictor.temperature < 4


def test_a_damaged_or_missing_packaged_file_is_refused_by_name(tmp_path, monkeypatch):
    for name in (pretrained.MODEL, pretrained.CARD, pretrained.DETECTOR):
        shutil.copy(pretrained.folder() / name, tmp_path / name)
    monkeypatch.setattr(pretrained, "folder", lambda: tmp_path)
    pretrained.default_model.cache_clear()
    pretrained.detector_bytes.cache_clear()
    try:
        assert pretrained.default_model() == tmp_path / pretrained.MODEL
        pretrained.default_model.cache_clear()
        with (tmp_path / pretrained.MODEL).open("r+b") as f:
            f.seek(1000)
            f.write(b"\x00\x01\x02")
        with pytest.raises(CheckpointError, match=r"digits\.onnx: damaged"):
            pretrained.default_model()
        (tmp_path / pretrained.DETECTOR).write_bytes(b"")
        with pytest.raises(CheckpointError, match=r"silero_vad\.onnx: damaged"):
            pretrained.detector_bytes()
        (tmp_path / pretrained.CARD).unlink()
        with pytest.raises(CheckpointError, match=r"no pretrained model.*make pretrained"):
            pretrained.default_model()
    finally:
        pretrained.default_model.cache_clear()
        pretrained.detector_bytes.cache_clear()


def test_only_the_packaged_recipe_becomes_the_packaged_model(trained_default, monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "folder", lambda: tmp_path)  # never touch the real package, even on failure
    with pytest.raises(ParameterError, match="the packaged model is"):
        package_model(trained_default / "model.pt")  # synthetic data, its own split
    assert list(tmp_path.iterdir()) == []


def test_export_takes_one_destination(trained_default, capsys):
    assert main(["export", str(trained_default / "model.pt")]) == 2
    assert "exactly one of --onnx OUT.onnx, --package and --web DIR" in capsys.readouterr().err


def test_predict_needs_files_after_a_model(capsys, tmp_path):
    assert main(["predict", str(tmp_path / "model.onnx")]) == 2
    assert "no audio files after the model" in capsys.readouterr().err


@pytest.mark.fsdd
def test_predict_without_a_model_uses_the_packaged_one(fsdd_root, capsys):
    files = [str(fsdd_root / "recordings" / f"{d}_lucas_{d % 5}.wav") for d in (0, 5, 9)]
    assert main(["predict", *files, "--json"]) == 0
    assert [r["text"] for r in json.loads(capsys.readouterr().out)] == ["0", "5", "9"]
    assert main(["predict", files[1], "--single"]) == 0
    assert capsys.readouterr().out.split("\t")[1] == "5"
