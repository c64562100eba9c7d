"""The command line end to end on synthetic FSDD-shaped data: every command and every output."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from conftest import digit_voice
from spoken_digits.apps.cli import build_parser, main


def train(data, out, *options: str) -> int:
    """`spoken-digits train` on `data`, writing to `out`, never downloading."""
    return main(["train", "--data", str(data), "--out", str(out), "--no-download", *options])


OUTPUTS = {"metrics.json", "model.pt", "config.json", "log.csv", "confusion.png", "curves.png"}


@pytest.fixture(scope="module")
def trained(synthetic_fsdd, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert (
        train(synthetic_fsdd, out, "--preset", "clean", "--split", "random", "--epochs", "12", "--model", "gru",
              "--param", "hidden=32") == 0
    )  # fmt: skip
    return out


def test_the_default_model_hears_the_word_in_a_long_quiet_noisy_recording(trained_default, tmp_path, capsys):
    metrics = json.loads((trained_default / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.8
    rng = np.random.default_rng(0)
    files = []
    for digit in (2, 7):
        y = 0.003 * rng.standard_normal(3 * 8000).astype(np.float32)  # 3 s of a noise floor
        voice = digit_voice(digit, seed=4242 + digit, speaker=1)
        y[13000 : 13000 + len(voice)] += voice
        files.append(tmp_path / f"{digit}_long.wav")
        sf.write(files[-1], 0.01 * y, 8000)  # and 40 dB quieter
    assert main(["predict", str(trained_default / "model.pt"), *map(str, files), "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert [a["text"] for a in answers] == ["2", "7"] and not any("warnings" in a for a in answers)
    assert all(1.4 <= a["words"][0]["start"] <= 1.7 for a in answers)  # the word starts at 13000 / 8000 s


def test_the_default_model_finds_no_digits_in_noise_or_a_tone_and_hears_both_of_two_words(
    trained_default, tmp_path, capsys
):
    rng = np.random.default_rng(1)
    t = np.arange(2 * 8000) / 8000
    inputs = {
        "fan.wav": 0.05 * rng.standard_normal(2 * 8000),
        "tone.wav": 0.3 * np.sin(2 * np.pi * 440 * t),
        "two.wav": np.concatenate([digit_voice(3, seed=1), np.zeros(4000), 0.5 * digit_voice(8, seed=2)]),
    }
    for name, y in inputs.items():
        sf.write(tmp_path / name, y.astype(np.float32), 8000)
    files = [str(tmp_path / name) for name in inputs]
    assert main(["predict", str(trained_default / "model.pt"), *files, "--json"]) == 0  # no digits is an answer
    captured = capsys.readouterr()
    answers = json.loads(captured.out)
    assert [a["text"] for a in answers] == ["", "", "38"]
    assert all("no digits heard" in a["warnings"][0] for a in answers[:2])
    assert f"{files[0]}: no digits heard" in captured.err
    # --single: one word per file, so no speech is an error and two words a warning
    assert main(["predict", str(trained_default / "model.pt"), *files, "--json", "--single"]) == 1
    answers = json.loads(capsys.readouterr().out)
    assert [a.get("digit") for a in answers[:2]] == [None, None]
    assert all("no speech found" in a["error"] and a["file"] in a["error"] for a in answers[:2])
    assert answers[2]["digit"] is not None and "2 separate stretches of speech" in answers[2]["warnings"][0]


def test_train_writes_every_output(trained):
    assert {p.name for p in trained.iterdir()} >= OUTPUTS
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in ("test_accuracy", "per_class", "per_speaker", "n_train", "n_test", "epochs_run", "seconds"):
        assert key in metrics
    assert metrics["test_accuracy"] > 0.8 and metrics["n_test"] == 20  # 10% of each digit's 24 clips
    assert set(metrics["per_speaker"]) == {"anna", "bert", "carl"}
    config = json.loads((trained / "config.json").read_text())
    assert config["model"] == {"name": "gru", "params": {"hidden": 32}} and config["split"]["name"] == "random"
    header = (trained / "log.csv").read_text().splitlines()[0]
    assert header == "fold,epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds"
    raw = torch.load(trained / "model.pt", weights_only=True)
    assert raw["config"]["audio"]["sr"] == 8000 and raw["classes"] == [str(d) for d in range(10)]


def test_predict_any_rate_depth_and_channels(trained, tmp_path, capsys):
    y = digit_voice(6, seed=123456)
    hi = soxr.resample(y, 8000, 48000)
    stereo = np.stack([hi, 0.7 * hi], axis=1) * 0.5
    sf.write(tmp_path / "six_48k.wav", np.concatenate([np.zeros((24000, 2)), stereo]), 48000, subtype="PCM_24")
    sf.write(tmp_path / "six_8k.wav", y, 8000)
    files = [str(tmp_path / "six_48k.wav"), str(tmp_path / "six_8k.wav")]
    assert main(["predict", str(trained / "model.pt"), *files, "--single"]) == 0  # reading, not finding words
    lines = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
    assert [line[1] for line in lines] == ["6", "6"]
    assert all(0.1 <= float(line[2]) <= 1 for line in lines)


def test_predict_warns_about_clipping_and_speech_the_crop_cuts(trained, tmp_path, capsys):
    loud = np.clip(8 * digit_voice(4, seed=5), -1, 1)
    three = np.concatenate([digit_voice(1, seed=6), digit_voice(2, seed=7), digit_voice(3, seed=8)])
    sf.write(tmp_path / "loud.wav", loud, 8000)
    sf.write(tmp_path / "three.wav", three, 8000)
    sf.write(tmp_path / "clean.wav", digit_voice(5, seed=9), 8000)
    files = [str(tmp_path / n) for n in ("loud.wav", "three.wav", "clean.wav")]
    assert main(["predict", str(trained / "model.pt"), *files, "--json", "--single"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert "clipped at full scale" in answers[0]["warnings"][0]
    assert "the model hears only the first 0.5 s" in answers[1]["warnings"][0]
    assert "warnings" not in answers[2] and all(a["digit"] is not None for a in answers)


def test_predict_reports_bad_files_and_answers_the_rest(trained_default, tmp_path, capsys):
    good = tmp_path / "good.wav"
    sf.write(good, digit_voice(2, seed=99), 8000)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    sf.write(tmp_path / "quiet.wav", np.zeros(4000), 8000)
    files = [str(good), str(tmp_path / "bad.wav"), str(tmp_path / "quiet.wav"), str(tmp_path / "gone.wav")]
    assert main(["predict", str(trained_default / "model.pt"), *files, "--json"]) == 1
    captured = capsys.readouterr()
    answers = json.loads(captured.out)
    assert [a["file"] for a in answers] == files
    assert answers[0]["text"] == "2" and "error" not in answers[0]
    assert "not a readable audio file" in answers[1]["error"]
    assert "silent" in answers[2]["error"] and "no such file" in answers[3]["error"]
    assert captured.err.count("spoken-digits: error:") == 3


def test_evaluate_prints_metrics_and_warns_on_overlap(trained, synthetic_fsdd, tmp_path, capsys):
    argv = ["evaluate", str(trained / "model.pt"), "--data", str(synthetic_fsdd), "--split", "official"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)
    confusion = np.array(json.loads((tmp_path / "metrics.json").read_text())["confusion"])
    assert metrics["n_test"] == 3 * 10 * 5 == confusion.sum()
    # the model saw most of these clips in training: it scores at least as well as on its own test set
    assert metrics["test_accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert metrics["test_accuracy"] > 0.8
    # the random-split model saw most official test clips: the score is flagged as optimistic
    assert (
        "spoken-digits: warning:" in captured.err and "of 150 test clips were in this model's training" in captured.err
    )


def test_loso_runs_every_fold(synthetic_fsdd, tmp_path):
    assert (
        train(synthetic_fsdd, tmp_path, "--split", "loso", "--epochs", "2", "--model", "bilstm", "--param", "hidden=16")
        == 0
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["folds"]) == {"anna", "bert", "carl"} == set(metrics["per_speaker"])
    assert metrics["test_accuracy"] == pytest.approx(np.mean(list(metrics["folds"].values())))
    assert metrics["n_test"] == 240
    for speaker in ("anna", "bert", "carl"):
        assert {"model.pt", "metrics.json", "log.csv"} <= {p.name for p in (tmp_path / "folds" / speaker).iterdir()}
        raw = torch.load(tmp_path / "folds" / speaker / "model.pt", weights_only=True)  # safe loading works
        assert raw["info"]["fold"] == speaker
    assert (OUTPUTS - {"model.pt"}) <= {p.name for p in tmp_path.iterdir()}


@pytest.mark.parametrize("model", ["seed_lstm", "cnn", "crnn", "lstm", "conv1d"])
def test_every_model_trains_through_the_cli(synthetic_fsdd, tmp_path, model):
    out = tmp_path / model
    assert train(synthetic_fsdd, out, "--model", model, "--epochs", "1", "--duration", "0") == 0
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 1


def test_the_robust_preset_trains_and_evaluate_reproduces_its_score(synthetic_fsdd, tmp_path, capsys):
    """Augmentation runs only in training: the saved model scores the same through evaluate (predict's path)."""
    assert (
        train(synthetic_fsdd, tmp_path, "--preset", "robust", "--epochs", "3", "--split", "loso", "--speaker", "bert")
        == 0
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    config = json.loads((tmp_path / "config.json").read_text())
    assert (
        config["augment"]["speed"] == 0.1 and config["features"]["n_mfcc"] == 13 and config["model"]["name"] == "conv1d"
    )
    capsys.readouterr()
    checkpoint = str(tmp_path / "folds" / "bert" / "model.pt")
    assert main(["evaluate", checkpoint, "--data", str(synthetic_fsdd), "--split", "loso", "--speaker", "bert"]) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_options_reach_the_saved_config(synthetic_fsdd, tmp_path):
    options = [
        "--preset",
        "clean",
        "--epochs",
        "1",
        "--trim-db",
        "0",
        "--duration",
        "0",
        "--scale",
        "power",
        "--lr",
        "0.01",
        "--batch-size",
        "8",
        "--patience",
        "3",
        "--seed",
        "7",
        "--split",
        "loso",
        "--speaker",
        "bert",
    ]
    assert train(synthetic_fsdd, tmp_path, *options) == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["audio"]["trim_db"] is None and config["audio"]["duration"] is None
    assert config["features"]["scale"] == "power"
    assert (config["train"]["lr"], config["train"]["batch_size"], config["train"]["patience"]) == (0.01, 8, 3)
    assert config["train"]["seed"] == 7 and config["split"] == {"name": "loso", "speaker": "bert", "test_fraction": 0.1}
    assert set(json.loads((tmp_path / "metrics.json").read_text())["folds"]) == {"bert"}


def test_seed_preset_is_the_seeds_pipeline(synthetic_fsdd, tmp_path):
    assert train(synthetic_fsdd, tmp_path, "--preset", "seed", "--epochs", "1") == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["features"]["scale"] == "power" and config["features"]["standardize"] is False
    assert config["audio"] == {
        "sr": 8000, "duration": 0.5, "trim_db": None, "vad": False, "max_duration": 30.0, "pad": "end"
    }  # fmt: skip
    assert config["model"]["name"] == "seed_lstm" and config["train"]["lr"] == 1e-3
    assert config["train"]["adam_eps"] == 1e-7 and config["train"]["patience"] == 0  # Keras' Adam, no early stop


def test_all_split_trains_without_a_test_set(synthetic_fsdd, tmp_path, capsys):
    assert train(synthetic_fsdd, tmp_path, "--preset", "clean", "--split", "all", "--epochs", "1") == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_accuracy"] is None and metrics["n_train"] + metrics["n_val"] == 240
    assert np.array(metrics["val_confusion"]).sum() == metrics["n_val"] and (tmp_path / "confusion.png").exists()
    assert "validation accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--model", "lsmt"], "unknown model 'lsmt' (did you mean 'lstm'?)"),
        (["train", "--epochs", "0"], "epochs must be >= 1, got 0"),
        (["train", "--split", "loso", "--speaker", "zed"], "unknown speaker 'zed'"),
        (["train", "--param", "oops"], "--param expects KEY=VALUE"),
        (
            ["train", "--device", "cuda:7"] if not torch.cuda.is_available() else ["train", "--device", "cuda:99"],
            "device 'cuda:",
        ),
        (["train", "--device", "toaster"], "unknown device 'toaster'"),
        (["evaluate", "missing.pt"], "missing.pt: no such checkpoint file"),
        (["predict", "missing.pt", "x.wav"], "missing.pt: no such checkpoint file"),
        (["serve", "missing.pt"], "missing.pt: no such checkpoint file"),
        (["serve", "missing.onnx"], "missing.onnx: no such ONNX model file"),
        (["evaluate", "missing.onnx"], "missing.onnx: no such ONNX model file"),
        (["predict", "m.onnx", "x.wav", "--device", "meta"], "m.onnx: ONNX models run on the CPU"),
        (["predict", "missing.pt", "x.wav", "--device", "toaster"], "unknown device 'toaster'"),
    ],
)
def test_errors_are_one_line_and_non_zero(synthetic_fsdd, tmp_path, capsys, argv, message):
    assert main([*argv, *(["--data", str(synthetic_fsdd), "--out", str(tmp_path)] if argv[0] == "train" else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spoken-digits: error:") and message in err and "\n" not in err


def test_checkpoint_from_elsewhere_is_refused(tmp_path, capsys):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "keras.pt")
    assert main(["predict", str(tmp_path / "keras.pt"), "x.wav"]) == 2
    assert "not a spoken-digits checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [[], ["train"], ["evaluate"], ["predict"], ["serve"], ["diagnose"], ["study"], ["report"], ["models"], ["cache"]],
)
def test_help_runs_for_every_command(command):
    run = subprocess.run([sys.executable, "-m", "spoken_digits", *command, "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("usage: spoken-digits")


def test_the_top_level_help_speaks_of_any_data_not_only_fsdd():
    description = build_parser().description or ""
    assert "use models on FSDD" not in description and "your own labelled audio" in description


def test_every_option_has_help_text():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def _config(*argv: str):
    from spoken_digits.apps.commands import _run_config

    return _run_config(build_parser().parse_args(["train", *argv]))


def test_help_prints_the_values_each_preset_uses():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = " ".join(subparsers.choices["train"].format_help().split())
    assert "None" not in text
    assert "(default: official)" in text and "(default: adamw 0.002; --preset clean: adam 0.001; seed: adam" in text
    assert "(default: conv1d; --preset clean: seed_lstm; seed: seed_lstm)" in text and "robust: members=3" in text
    assert "(default: the detector; --preset clean: 40; seed: 0; robust: 40)" in text
    assert "(default: 10; --preset scratch: 20; clean: 40; seed: 40; robust: 20)" in text


def test_another_model_does_not_inherit_the_presets_hyper_parameters():
    assert _config("--preset", "robust").model.params == {"members": 3}
    assert _config("--preset", "robust", "--model", "cnn").model.params == {}
    assert _config("--preset", "robust", "--model", "cnn", "--param", "members=2").model.params == {"members": 2}
    assert _config("--preset", "robust", "--param", "hidden=64").model.params == {"members": 3, "hidden": 64}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "x.npz", "--preset", "seed"], "--preset not used with --data FILE.npz"),
        (["--data", "x.npz", "--duration", "1", "--trim-db", "0"], "--duration, --trim-db not used with --data FILE"),
        (["--data", "x.npz", "--scale", "power"], "--scale not used"),
        (["--data", "x.npz", "--split", "loso", "--speaker", "jackson"], "--split, --speaker not used"),
        (["--data", "x.npz", "--no-download"], "--no-download not used"),
        (["--history", "h.json", "--n-train", "9", "--lr", "0.1"], "--lr not used with --history"),
        (["--preset", "seed", "--n-train", "9"], "--n-train not used without --history"),
    ],
)
def test_diagnose_refuses_options_it_would_ignore(capsys, argv, message):
    assert main(["diagnose", *argv]) == 2
    assert message in capsys.readouterr().err


def test_diagnose_arrays_uses_param_without_model(tmp_path, monkeypatch):
    """--param reaches the diagnosed model even when --model is left at the default (conv1d)."""
    from spoken_digits import diagnose

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "x.npz", X=rng.standard_normal((20, 16, 8)).astype(np.float32), y=np.arange(20) % 10)
    seen = {}

    def fake(x, y, *, model=None, **kwargs):
        seen["model"] = model() if model is not None else None
        raise SystemExit(0)

    monkeypatch.setattr(diagnose, "diagnose_arrays", fake)
    with pytest.raises(SystemExit):
        main(["diagnose", "--data", str(tmp_path / "x.npz"), "--param", "hidden=7"])
    assert seen["model"].convs[0].out_channels == 7


def test_resume_under_torchrun_takes_backend_and_gpu_from_the_saved_run(tmp_path, monkeypatch):
    """--resume takes no --device: the process group must still be nccl on the run's own GPU."""
    import torch.distributed as dist

    from spoken_digits import device
    from spoken_digits.apps import commands
    from spoken_digits.config import preset
    from spoken_digits.training import experiment
    from spoken_digits.training.runstate import RunState

    cfg = preset("default")
    saved = cfg.to_dict() | {"train": cfg.to_dict()["train"] | {"device": "cuda"}}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    RunState(tmp_path).save_finished("official", {"metrics": {}, "history": []})
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(device, "check_device", lambda name: calls.append(("device", name)))
    monkeypatch.setattr(commands, "_dataset", lambda args: None)  # the dataset is resume_run's business
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: calls.append(("gpu", index)))
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.append(("backend", backend)))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: None)
    monkeypatch.setattr(experiment, "resume_run", lambda out, **kw: {"test_accuracy": 1.0, "seconds": 0.0})
    assert main(["train", "--resume", str(tmp_path)]) == 0
    assert calls == [("device", "cuda"), ("gpu", 1), ("backend", "nccl")]


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    assert capsys.readouterr().out.split("\n")[0].startswith("seed_lstm")


def test_trim_db_replaces_the_speech_detector():
    assert _config().audio.vad and _config().audio.trim_db is None
    trimmed = _config("--trim-db", "30").audio
    assert trimmed.trim_db == 30 and not trimmed.vad


def test_noise_dir_reaches_training_and_needs_a_preset_with_noise(synthetic_fsdd, tmp_path, capsys):
    noises = tmp_path / "noises"
    noises.mkdir()
    sf.write(noises / "fan.flac", 0.1 * np.random.default_rng(0).standard_normal(8000), 8000)
    assert train(synthetic_fsdd, tmp_path / "run", "--epochs", "1", "--noise-dir", str(noises)) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["augment"]["noise_dir"] == str(noises.resolve()) and config["augment"]["noise"] > 0
    assert train(synthetic_fsdd, tmp_path / "clean", "--preset", "clean", "--noise-dir", str(noises)) == 2
    assert "noise_dir needs noise > 0" in capsys.readouterr().err


@pytest.mark.parametrize("stop_in", ["load_corpus", "fit"])
def test_an_interrupt_before_the_first_epoch_ends_keeps_its_promise(
    synthetic_fsdd, tmp_path, capsys, monkeypatch, stop_in
):
    """Stopped while the data is read, nothing is saved and the message says so; stopped in the first epoch,
    the saved config is enough for --resume, as the message promises."""
    from spoken_digits.training import experiment

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, stop_in, interrupted)
    out = tmp_path / "run"
    assert train(synthetic_fsdd, out, "--preset", "clean", "--epochs", "1") == 130
    said = capsys.readouterr().err
    monkeypatch.undo()
    resumed = main(["train", "--resume", str(out), "--data", str(synthetic_fsdd)])
    if stop_in == "fit":
        assert f"interrupted; progress is saved, continue with: spoken-digits train --resume {out}" in said
        assert resumed == 0 and (out / "metrics.json").is_file() and not (out / ".state").exists()
    else:
        assert "interrupted before the run started (nothing saved); run the same command again" in said
        assert resumed == 2 and "nothing to resume" in capsys.readouterr().err
        assert train(synthetic_fsdd, out, "--preset", "clean", "--epochs", "1") == 0
