"""Data-parallel training: two CPU processes (gloo) end with identical weights; torchrun runs the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from spoken_digits.apps.cli import main
from spoken_digits.config import TrainConfig
from spoken_digits.frontend.batches import FeatureSet
from spoken_digits.models.nets import create_model
from spoken_digits.training.train import fit, seed_everything


def _toy(n: int, seed: int) -> FeatureSet:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(n, 10, 8, generator=g)
    x[torch.arange(n), :, y] += 2.0
    return FeatureSet(x, torch.randint(5, 11, (n,), generator=g), y)


def _rank(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    seed_everything(rank)  # different initial weights per rank: DDP must broadcast rank 0's
    model = create_model("crnn", n_features=8, n_classes=4, hidden=16, channels=[4, 8])  # BatchNorm buffers too
    result = fit(model, _toy(101, 0), _toy(30, 1), TrainConfig(epochs=3, batch_size=16, lr=1e-2, patience=0))
    torch.save({"state": model.state_dict(), "history": result.history}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_end_with_identical_weights(tmp_path):
    init = f"file://{tmp_path}/rendezvous"
    mp.spawn(_rank, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:
        torch.testing.assert_close(a["state"][key], b["state"][key], rtol=0, atol=0, msg=key)
    # each rank trained on its own half of every epoch, and both chose the same best epoch
    assert a["history"][0]["train_loss"] != b["history"][0]["train_loss"]
    assert [r["val_accuracy"] for r in a["history"]] == [r["val_accuracy"] for r in b["history"]]
    assert a["history"][-1]["val_accuracy"] >= 0.6  # and they learned (4 classes: chance is 0.25)


def test_the_cli_trains_under_torchrun(synthetic_fsdd, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.fail("torchrun is installed with torch and must be next to the interpreter")
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    options = ["--data", str(synthetic_fsdd), "--preset", "clean", "--epochs", "8", "--patience", "0", "--no-download"]
    argv = [torchrun, "--nproc-per-node", "2", "--master-port", "29531", "-m", "spoken_digits", "train"]
    run = subprocess.run([*argv, *options, "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 8
    assert run.stdout.count("test accuracy") == 1  # rank 0 alone reports
    # Two processes (each half of every batch) learn as well as one: within 0.1 of it, far above chance.
    single = tmp_path / "single"
    assert main(["train", *options, "--out", str(single), "--batch-size", "64"]) == 0  # one process, the same steps
    alone = json.loads((single / "metrics.json").read_text())["test_accuracy"]
    assert metrics["test_accuracy"] >= alone - 0.1 and metrics["test_accuracy"] >= 0.6, (metrics, alone)
