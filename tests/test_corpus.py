"""A run's clips in memory or streamed from the cache: the same training either way, and the right choice."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from spoken_digits.config import SplitConfig, SplitName, preset
from spoken_digits.data.sources import open_dataset
from spoken_digits.training import corpus as corpus_module
from spoken_digits.training import experiment
from spoken_digits.training.corpus import load_corpus
from spoken_digits.training.experiment import train_run


def _cfg(name: str, epochs: int = 2):
    cfg = preset(name)
    return dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, epochs=epochs), split=SplitConfig(SplitName.RANDOM, test_fraction=0.2)
    )


def test_small_datasets_are_held_in_memory_large_ones_stream(synthetic_fsdd, monkeypatch):
    data = open_dataset(synthetic_fsdd)
    held = load_corpus(data, _cfg("default"), progress=False)
    assert held.waves is not None and held.waves.shape == (len(data.clips), int(held.lengths.max()))
    monkeypatch.setattr(corpus_module, "IN_MEMORY_BYTES", 0)
    streamed = load_corpus(data, _cfg("default"), progress=False)
    assert streamed.waves is None
    index = np.array([5, 0, 17])
    batch = next(streamed.stream().subset(index).batches(8))
    expected = held.waves[index, : int(held.lengths[index].max())]
    assert torch.equal(batch.x, expected) and torch.equal(batch.lengths, held.lengths[index])
    assert torch.equal(batch.y, held.labels[index])


def test_a_streamed_run_trains_as_the_in_memory_one(synthetic_fsdd, tmp_path, monkeypatch):
    """The default preset (no standardiser): batches, augmentation and features are the same either way."""
    data = open_dataset(synthetic_fsdd)
    held = train_run(_cfg("default"), tmp_path / "memory", data=data)
    monkeypatch.setattr(corpus_module, "IN_MEMORY_BYTES", 0)
    streamed = train_run(_cfg("default"), tmp_path / "disk", data=data)
    for key in ("n_train", "n_test", "per_class", "confusion"):
        assert streamed[key] == held[key], key
    assert streamed["test_accuracy"] == pytest.approx(held["test_accuracy"])
    assert _losses(tmp_path / "disk") == _losses(tmp_path / "memory")


def _losses(run: Path) -> list[tuple[str, str]]:
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert rows
    return [(r["train_loss"], r["train_accuracy"]) for r in rows]


def test_a_streamed_run_fits_its_standardiser_on_a_sample(synthetic_fsdd, tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_module, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(experiment, "STANDARDIZER_CLIPS", 50)
    metrics = train_run(_cfg("clean", epochs=8), tmp_path / "clean", data=open_dataset(synthetic_fsdd))
    assert metrics["test_accuracy"] > 0.5  # ten classes: chance is 0.1
    assert Path(tmp_path / "clean" / "model.pt").is_file()
