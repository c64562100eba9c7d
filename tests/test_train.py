"""The training loop learns, is deterministic, stops early and keeps the best weights."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import soundfile as sf
import torch
from tests.conftest import SR, digit_voice

from spoken_digits.apps.cli import main
from spoken_digits.config import SplitConfig, SplitName, TrainConfig, preset
from spoken_digits.data.sources import open_dataset
from spoken_digits.data.splits import make_folds
from spoken_digits.errors import ParameterError
from spoken_digits.frontend.batches import FeatureSet
from spoken_digits.models import checkpoint
from spoken_digits.models.nets import create_model
from spoken_digits.training import experiment
from spoken_digits.training.train import fit, predict_logits, seed_everything


def toy_data(n: int, seed: int, *, noise: float = 1.0) -> FeatureSet:
    """Class c lights up feature band c; clips have 6-12 valid frames."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    lengths = torch.randint(6, 13, (n,), generator=g)
    x = noise * torch.randn(n, 12, 8, generator=g)
    x[torch.arange(n), :, y] += 2.0
    x *= (torch.arange(12)[None, :] < lengths[:, None])[:, :, None]
    return FeatureSet(x, lengths, y)


CFG = TrainConfig(epochs=8, batch_size=16, lr=1e-2, patience=0, seed=3)


def train_once(cfg: TrainConfig = CFG, model_name: str = "gru"):
    seed_everything(cfg.seed)
    model = create_model(model_name, n_features=8, n_classes=4, hidden=16)
    result = fit(model, toy_data(160, 0), toy_data(40, 1), cfg)
    return model, result


def test_learns_a_separable_task():
    model, result = train_once()
    test = toy_data(80, 2)
    accuracy = (predict_logits(model, test).argmax(1) == test.y).float().mean()
    assert accuracy > 0.9 and result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_same_seed_same_numbers_other_seed_other_numbers():
    _, a = train_once()
    _, b = train_once()
    _, c = train_once(dataclasses.replace(CFG, seed=4))
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    assert strip(a.history) != strip(c.history)


def test_early_stopping_and_best_weights():
    cfg = dataclasses.replace(CFG, epochs=60, patience=3, lr=5e-2)
    model, result = train_once(cfg)
    assert result.epochs_run < 60 and result.epochs_run - result.best_epoch == 3
    best = result.history[result.best_epoch - 1]
    assert best["val_accuracy"] == max(r["val_accuracy"] for r in result.history)
    val = toy_data(40, 1)
    restored = (predict_logits(model, val).argmax(1) == val.y).float().mean().item()
    assert restored == pytest.approx(best["val_accuracy"])


def test_keep_last_keeps_the_last_epoch_whatever_validation_says():
    cfg = dataclasses.replace(CFG, epochs=12, lr=5e-2, keep_last=True)
    model, result = train_once(cfg)
    assert result.best_epoch == result.epochs_run == 12 and "val_accuracy" in result.history[-1]
    val = toy_data(40, 1)
    kept = (predict_logits(model, val).argmax(1) == val.y).float().mean().item()
    assert kept == pytest.approx(result.history[-1]["val_accuracy"])  # the last epoch's weights
    _, chosen = train_once(dataclasses.replace(cfg, keep_last=False))
    assert chosen.best_epoch < 12  # without it, this run keeps an earlier epoch


def test_log_rows_have_every_column():
    _, result = train_once(dataclasses.replace(CFG, epochs=2))
    assert set(result.history[0]) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"}


def test_subset_cuts_to_the_longest_clip():
    data = toy_data(10, 0)
    part = data.subset(torch.tensor([0, 1]))
    assert part.x.shape[1] == int(data.lengths[:2].max())


def test_resuming_mid_run_gives_the_same_numbers_with_adamw_onecycle_and_smoothing():
    cfg = dataclasses.replace(
        CFG, optimizer="adamw", schedule="onecycle", label_smoothing=0.1, weight_decay=1e-2, epochs=5
    )
    states: list[dict] = []
    seed_everything(cfg.seed)
    whole = fit(create_model("conv1d", n_features=8, n_classes=4, hidden=16), toy_data(160, 0), toy_data(40, 1), cfg,
                on_epoch=lambda s: states.append(copy.deepcopy(s)))  # fmt: skip
    seed_everything(cfg.seed)
    resumed = fit(create_model("conv1d", n_features=8, n_classes=4, hidden=16), toy_data(160, 0), toy_data(40, 1),
                  cfg, resume=states[1])  # fmt: skip
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    assert strip(resumed.history) == strip(whole.history)
    assert states[-1]["scheduler"]["last_epoch"] == 5 * 10  # one-cycle stepped once per batch


def test_label_smoothing_changes_the_loss():
    _, plain = train_once(dataclasses.replace(CFG, epochs=1))
    _, smooth = train_once(dataclasses.replace(CFG, epochs=1, label_smoothing=0.2))
    assert smooth.history[0]["train_loss"] != plain.history[0]["train_loss"]


def test_an_ensemble_trains_its_members_independently_and_averages_them():
    seed_everything(0)
    model = create_model("conv1d", n_features=8, n_classes=4, hidden=16, members=3)
    data = toy_data(160, 0)
    model.train()
    assert model(data.x[:5], data.lengths[:5]).shape == (15, 4)  # every member's logits, stacked
    fit(model, data, toy_data(40, 1), dataclasses.replace(CFG, epochs=4))
    test = toy_data(80, 2)
    averaged = predict_logits(model, test)
    members = torch.stack([predict_logits(m, test).log_softmax(1) for m in model.members])
    torch.testing.assert_close(averaged, members.mean(0))
    assert (averaged.argmax(1) == test.y).float().mean() > 0.9
    assert not torch.equal(model.members[0].head[1].weight, model.members[1].head[1].weight)
    with pytest.raises(ParameterError, match="members"):
        create_model("conv1d", n_features=8, n_classes=4, members=0)


# --- a run's data options travel with it: evaluate and --resume use them, and overlap is found by content ---

WORDS = {"lights": 1, "music": 4, "stop": 8}
VOICES = ("ann", "bob", "cat", "dan", "eve")
PATTERN = "^([a-z]+)_"


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Class folders: 3 words x 5 speakers (named in the file names) x 10 takes = 150 clips, no split of their own."""
    root = tmp_path_factory.mktemp("words")
    for word, voice in WORDS.items():
        (root / word).mkdir()
        for s, speaker in enumerate(VOICES):
            for take in range(10):
                y = digit_voice(voice, speaker=s, seed=700 * s + 10 * voice + take)
                sf.write(root / word / f"{speaker}_{take}.wav", y, SR, subtype="PCM_16")
    return root


RUN_ARGS = ["--preset", "clean", "--model", "gru", "--param", "hidden=16", "--no-download"]


@pytest.fixture(scope="module")
def speaker_run(words: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("speaker-run")
    argv = ["train", "--data", str(words), "--out", str(out), "--epochs", "2", "--speaker-pattern", PATTERN]
    assert main([*argv, *RUN_ARGS]) == 0
    return out


def test_a_speaker_run_saves_its_data_options_and_real_shares(speaker_run, words):
    metrics = json.loads((speaker_run / "metrics.json").read_text())
    assert metrics["split_used"] == "speakers" and metrics["n_test"] == 30  # one speaker of five: 20%, the cap
    assert metrics["shares"] == {"train": 0.72, "validation": 0.08, "test": 0.2}  # 4 speakers left: clips
    record = json.loads((speaker_run / "data.json").read_text())
    assert record["options"]["speaker_pattern"] == PATTERN
    assert checkpoint.load(speaker_run / "model.pt").info["data_options"]["speaker_pattern"] == PATTERN


def test_evaluate_uses_the_runs_own_data_options_and_warns_on_trained_clips(speaker_run, words, capsys):
    """The review's case: a model trained on a speaker split, evaluated without --speaker-pattern, was scored on
    a random split of which 12 of 15 test clips had been trained on, without a warning."""
    trained = json.loads((speaker_run / "metrics.json").read_text())
    model = str(speaker_run / "model.pt")
    for argv in (["evaluate", model], ["evaluate", model, "--data", str(words)]):  # the run's data and pattern
        assert main(argv) == 0
        captured = capsys.readouterr()
        metrics = json.loads(captured.out)
        assert metrics["split"] == "official" and metrics["n_test"] == trained["n_test"] == 30
        assert set(metrics["per_speaker"]) == set(trained["per_speaker"]) and metrics["seen_in_training"] == 0
        assert "warning" not in captured.err
    # a split that mixes trained clips in is flagged, whatever its name: counted from the files' content
    assert main(["evaluate", model, "--split", "random"]) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)
    held = set(trained["per_speaker"])
    seen = sum(speaker not in held for speaker in _random_test_speakers(words))
    assert metrics["n_test"] == 15 and metrics["seen_in_training"] == seen >= 10
    assert f"{seen} of 15 test clips were in this model's training data" in captured.err


def _random_test_speakers(words: Path) -> list[str]:
    data = open_dataset(words, speaker_pattern=PATTERN)
    (fold,) = make_folds(data.clips, SplitConfig(SplitName.RANDOM), seed=preset("clean").train.seed)
    return [data.clips[i].speaker for i in fold.test]


def test_resume_takes_the_runs_data_options_and_refuses_others(words, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(words), "--out", str(out), "--epochs", "2", "--speaker-pattern", PATTERN]

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt  # after the first epoch's state is saved, as Ctrl-C would

    with monkeypatch.context() as patched:
        patched.setattr(experiment, "write_text", interrupt)
        assert main([*argv, *RUN_ARGS]) == 130
    assert (out / ".state" / "speakers.pt").exists()
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--speaker-pattern", "^(.)"]) == 2
    err = capsys.readouterr().err
    assert f"--speaker-pattern: '^(.)' now, '{PATTERN}' in the run" in err
    assert main(["train", "--resume", str(out), "--data", str(words), "--classes", "lights,stop"]) == 2
    assert main(["train", "--resume", str(out)]) == 0  # no options: the run's own dataset and pattern
    assert json.loads((out / "metrics.json").read_text())["split_used"] == "speakers"
