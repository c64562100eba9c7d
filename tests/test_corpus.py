"""A run's clips in memory or streamed from the cache: the same training either way, and the right choice."""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tests.conftest import digit_voice

from spoken_digits.config import SplitConfig, SplitName, preset
from spoken_digits.data.sources import open_dataset
from spoken_digits.errors import AudioError, ParameterError
from spoken_digits.models import checkpoint
from spoken_digits.training import corpus as corpus_module
from spoken_digits.training import experiment
from spoken_digits.training.corpus import load_corpus
from spoken_digits.training.experiment import resume_run, train_run
from spoken_digits.training.runstate import RunState


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
    """The default preset (speech encoder, augmented views, no standardiser): batches, augmentation and
    features are the same either way."""
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


def test_a_clip_the_front_end_cannot_use_stops_the_run_or_is_left_out_with_the_flag(synthetic_fsdd, tmp_path):
    """A silent file passes the header check; the front end finds no speech in it. Without --skip-bad the run
    stops naming it (even once a --skip-bad run has cached it); with the flag it is left out and the split
    is made without it."""
    root = tmp_path / "data"
    shutil.copytree(synthetic_fsdd, root)
    silent = root / "recordings" / "3_anna_99.wav"
    sf.write(silent, np.zeros(4000, np.float32), 8000, subtype="PCM_16")
    cfg = _cfg("default", epochs=1)
    with pytest.raises(AudioError, match=r"3_anna_99.wav"):
        train_run(cfg, tmp_path / "strict", data=open_dataset(root))
    assert not (tmp_path / "strict" / "config.json").exists()  # nothing written before the data was good
    metrics = train_run(cfg, tmp_path / "lenient", data=open_dataset(root), skip_bad=True)
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_test"] == 3 * 10 * 8  # the silent one is out
    info = checkpoint.load(tmp_path / "lenient" / "model.pt").info
    assert info["skipped"] == [str(silent)]
    with pytest.raises(AudioError, match=r"3_anna_99.wav"):  # the cache knows it is bad; the flag is still needed
        train_run(cfg, tmp_path / "strict-again", data=open_dataset(root))


def test_resume_refuses_another_dataset(synthetic_fsdd, tmp_path):
    out = tmp_path / "run"
    train_run(_cfg("clean", epochs=1), out, data=open_dataset(synthetic_fsdd))
    (out / "metrics.json").unlink()
    RunState(out).save_finished("random", {"metrics": {}, "history": []})  # as if it had been interrupted
    other = tmp_path / "other"
    for word in ("yes", "no"):
        for take in range(3):
            (other / word).mkdir(parents=True, exist_ok=True)
            sf.write(other / word / f"{take}.wav", digit_voice(take, seed=take), 8000, subtype="PCM_16")
    with pytest.raises(ParameterError, match=r"started on 240 clips.*resume it with the same --data"):
        resume_run(out, data=open_dataset(other))


def test_reading_a_dataset_leaves_torchs_threads_alone(synthetic_fsdd, tmp_path):
    """Importing silero_vad sets torch to one thread; the front end and its cache must not pass that on to
    training (it once did: every run after a cache lookup trained on one thread). A fresh process, since the
    import happens once per process."""
    code = (
        "import torch; torch.set_num_threads(2)\n"
        "from spoken_digits.config import preset\n"
        "from spoken_digits.data.sources import open_dataset\n"
        "from spoken_digits.training.corpus import load_corpus\n"
        f"load_corpus(open_dataset({str(synthetic_fsdd)!r}), preset('default'), progress=False)\n"
        "print(torch.get_num_threads())\n"
    )
    env = {**os.environ, "SPOKEN_DIGITS_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split()[-1] == "2"


def test_an_os_error_on_rank_0_reaches_every_rank(monkeypatch):
    """A full disk or an unreadable cache on rank 0 is sent to the other ranks, which would otherwise wait in
    the broadcast until the collective times out; it becomes one DatasetError everywhere."""
    from spoken_digits.errors import DatasetError

    sent = []

    def broadcast(objects, src):
        sent.append(list(objects))

    monkeypatch.setattr(experiment.torch.distributed, "broadcast_object_list", broadcast)

    def fill_cache():
        raise OSError(28, "No space left on device", "/cache/clips/x/waves.f32")

    with pytest.raises(
        DatasetError, match=r"^rank 0: \[Errno 28\] No space left on device: '/cache/clips/x/waves.f32'"
    ):
        experiment._rank0_first(fill_cache, main=True)
    assert sent == [["[Errno 28] No space left on device: '/cache/clips/x/waves.f32'"]]
