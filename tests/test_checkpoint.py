"""Checkpoints round-trip everything prediction needs and refuse anything else."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from spoken_digits.config import preset
from spoken_digits.errors import CheckpointError
from spoken_digits.frontend.features import Featurizer
from spoken_digits.models import checkpoint
from spoken_digits.models.nets import create_model
from spoken_digits.recognize.torchmodel import Predictor


def make_checkpoint() -> checkpoint.Checkpoint:
    cfg = preset("clean")
    featurizer = Featurizer(cfg.audio.sr, cfg.features)
    featurizer.standardizer.mean.fill_(-40.0)
    model = create_model("seed_lstm", n_features=80, n_classes=10)
    return checkpoint.Checkpoint(
        cfg,
        [str(d) for d in range(10)],
        model.state_dict(),
        featurizer.state_dict(),
        {"fold": "official", "accuracy": 0.99},
    )


def test_round_trip_loads_with_weights_only(tmp_path):
    ckpt = make_checkpoint()
    checkpoint.save(tmp_path / "model.pt", ckpt)
    raw = torch.load(tmp_path / "model.pt", weights_only=True)
    assert raw["format"] == "spoken-digits" and raw["version"] == checkpoint.VERSION
    back = checkpoint.load(tmp_path / "model.pt")
    assert back.config == ckpt.config and back.classes == ckpt.classes and back.info == ckpt.info
    featurizer, model = back.build()
    assert float(featurizer.standardizer.mean[0]) == -40.0
    torch.testing.assert_close(model.state_dict(), ckpt.model_state)
    assert not [p for p in tmp_path.iterdir() if p.name != "model.pt"]  # no temporary files left


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda p: p.write_bytes(b""), "not a readable spoken-digits checkpoint"),
        (lambda p: p.write_bytes(b"\x00garbage" * 100), "not a readable spoken-digits checkpoint"),
        (lambda p: torch.save({"state_dict": {}}, p), "not a spoken-digits checkpoint"),
        (lambda p: torch.save(torch.zeros(3), p), "not a spoken-digits checkpoint"),
    ],
    ids=["empty", "garbage", "foreign-dict", "bare-tensor"],
)
def test_foreign_or_damaged_files_are_rejected(tmp_path, content, message):
    path = tmp_path / "model.pt"
    content(path)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(path)


def test_truncated_checkpoint_is_rejected(tmp_path):
    checkpoint.save(tmp_path / "model.pt", make_checkpoint())
    data = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt: not a readable"):
        checkpoint.load(tmp_path / "cut.pt")


class Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_never_run(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        pickle.dump({"format": "spoken-digits", "version": 1, "x": Payload()}, f, protocol=2)
    with pytest.raises(
        CheckpointError, match=r"evil\.pt: not a readable .*\(it holds Python objects other than tensors"
    ):
        checkpoint.load(path)
    assert "pwned" not in capsys.readouterr().out


def test_unknown_version_is_refused(tmp_path):
    checkpoint.save(tmp_path / "model.pt", make_checkpoint())
    raw = torch.load(tmp_path / "model.pt", weights_only=True)
    raw["version"] = 99
    torch.save(raw, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format version 99 is not supported"):
        checkpoint.load(tmp_path / "future.pt")


def test_weights_for_another_model_are_refused(tmp_path):
    ckpt = make_checkpoint()
    ckpt.model_state = create_model("gru", n_features=80, n_classes=10).state_dict()
    checkpoint.save(tmp_path / "model.pt", ckpt)
    with pytest.raises(CheckpointError, match="do not fit model 'seed_lstm'"):
        checkpoint.load(tmp_path / "model.pt").build()


def test_missing_file():
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        checkpoint.load("/nonexistent/model.pt")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("notes.txt", b"hello world\nthe model in runs/ reached 97%\n", "not a PyTorch checkpoint file"),
        ("todo.txt", b"some notes\n", "not a PyTorch checkpoint file"),
        ("random.pt", np.random.default_rng(0).bytes(4096), "not a PyTorch checkpoint file"),
        ("empty.pt", b"", "the file is empty"),
    ],
    ids=["text-keyerror", "text-indexerror", "random-bytes", "empty"],
)
def test_a_file_that_is_no_checkpoint_gets_one_safe_line(tmp_path, name, content, reason):
    """Whatever the unpickler trips on, one line naming the file, and never advice to load unsafely."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        Predictor.from_file(path)
    message = str(info.value)
    assert message == f"{path}: not a readable spoken-digits checkpoint ({reason})"
    assert "weights_only" not in message.lower() and "trusted" not in message


def test_a_damaged_archive_says_so(tmp_path):
    checkpoint.save(tmp_path / "model.pt", make_checkpoint())
    data = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError, match=r"cut\.pt: not a readable spoken-digits checkpoint \(damaged or truncated"
    ):
        checkpoint.load(tmp_path / "cut.pt")
