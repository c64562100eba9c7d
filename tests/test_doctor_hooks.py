"""The doctor's training hooks on small arrays: the shared core, the PyTorch hooks, keras' backend
choice, and the one-line refusal of files that are no checkpoint (predict and serve alike)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from spoken_digits.apps.cli import main
from spoken_digits.diagnose.examine import band_limit, examine, normalisation_leak, split_leak
from spoken_digits.diagnose.findings import Finding, Severity
from spoken_digits.diagnose.outputs import LossKind
from spoken_digits.diagnose.pytorch import Doctor
from spoken_digits.diagnose.watch import Watch, _merge
from spoken_digits.errors import ParameterError


def blobs(n: int = 300, steps: int = 12, width: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Separable (N, T, F) arrays: each class lights up its own pair of bands over a smooth envelope."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    x = rng.normal(0, 0.3, (n, steps, width)).astype(np.float32)
    envelope = np.sin(np.linspace(0, np.pi, steps))[None, :, None]
    bands = np.zeros((n, 1, width), np.float32)
    bands[np.arange(n), 0, 2 * y] = 3
    bands[np.arange(n), 0, 2 * y + 1] = 3
    return (x + envelope * bands + envelope).astype(np.float32), y


def test_the_watch_checks_its_arrays():
    x, y = blobs()
    with pytest.raises(ParameterError, match="at least 10 clips"):
        Watch(x[:5], y[:5])
    with pytest.raises(ParameterError, match="one label each"):
        Watch(x, y[:-1])
    with pytest.raises(ParameterError, match="as a pair"):
        Watch(x, y, x_train=x)


def test_right_answers_under_other_class_numbers_are_a_label_order_fault():
    x, y = blobs()
    watch = Watch(x, y, n_train=300)
    watch.begin(np.zeros((len(y), 10)), y, LossKind(applies_softmax=True, sparse=True))  # a zero-initialised head
    renumbered = np.array([3, 7, 1, 0, 9, 2, 8, 5, 4, 6])[y]  # what a model trained on other numbers answers
    for accuracy in (0.3, 0.6, 0.9):
        watch.epoch(np.eye(10)[renumbered], train_accuracy=accuracy, train_loss=1.0)
    result = watch.diagnosis()
    assert result.codes(Severity.WARNING) == ["label_order"], result.render()  # nothing else, no sigmoid alarm
    assert result.top is not None and result.top.evidence["label_to_prediction"][0] == 3


def test_loss_and_label_forms_that_do_not_fit_are_named_before_training():
    x, y = blobs()
    probabilities = np.full((len(y), 10), 0.1)
    found = Watch(x, y).begin(probabilities, np.eye(10)[y], LossKind(applies_softmax=False, sparse=True, name="s"))
    assert [f.code for f in found][:1] == ["loss_mismatch"] and "one-hot rows" in found[0].title
    found = Watch(x, y).begin(probabilities, y, LossKind(applies_softmax=False, sparse=False, name="c"))
    assert found[0].code == "loss_mismatch" and "class indices" in found[0].title
    logits = np.random.default_rng(0).normal(size=(len(y), 10))
    found = Watch(x, y).begin(logits, y, LossKind(applies_softmax=False, sparse=True))
    assert found[0].code == "loss_mismatch" and "from_logits" in found[0].title
    assert not [f for f in Watch(x, y).begin(logits, y, LossKind(applies_softmax=True, sparse=True)) if f.severity]


def test_shared_clips_and_a_scaler_fitted_elsewhere_are_leaks():
    x, _ = blobs()
    train, val = x[:200], x[200:]
    assert split_leak(train, val) == []
    leaked = split_leak(np.concatenate([train, val[:50]]).astype(np.float64), val)
    assert leaked and leaked[0].code == "split_leak" and leaked[0].evidence["shared_clips"] == 50
    lengths = np.full(len(train), train.shape[1])
    mean, std = train.mean(axis=(0, 1)), train.std(axis=(0, 1))
    assert normalisation_leak((train - mean) / std, lengths) == []  # fitted on the training clips
    test = blobs(100, seed=1)[0] * 1.1 + 0.1  # a test set recorded a little louder
    other_mean, other_std = test.mean(axis=(0, 1)), test.std(axis=(0, 1))
    leak = normalisation_leak((train - other_mean) / other_std, lengths)
    assert leak and leak[0].code == "normalisation_leak"
    assert normalisation_leak(train, lengths) == []  # not standardised at all: nothing to say


def test_empty_top_bands_read_as_a_sample_rate_mismatch_and_diagnose_data_agrees():
    x, y = blobs(width=40)
    x[:, :, 30:] = x[:, :, 30:].min()  # a dB floor: nothing above three quarters of the band
    lengths = np.full(len(x), x.shape[1])
    found = band_limit(x, lengths)
    assert found and found[0].code == "sample_rate_mismatch" and found[0].evidence["empty_bands"] == 10
    codes = [f.code for f in examine(x, y).findings]
    assert "sample_rate_mismatch" in codes and "dead_bands" not in codes
    assert band_limit(blobs(width=40)[0], lengths) == []


def _loop(model: nn.Module, x: np.ndarray, y: np.ndarray, criterion, *, epochs: int = 3, **kw) -> Doctor:
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    doctor = Doctor(x[200:], y[200:], n_train=200, optimizer=optimizer, verbose=False, **kw)
    xs, ys = torch.from_numpy(x[:200]), torch.from_numpy(y[:200])
    for _ in range(epochs):
        for i in range(0, 200, 32):
            logits = model(xs[i : i + 32])
            loss = criterion(logits, ys[i : i + 32])
            doctor.on_batch(logits, ys[i : i + 32], loss)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        doctor.on_epoch(model)
    return doctor


def _flat(head: nn.Module | None = None) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(12 * 20, 10), head or nn.Identity())


@pytest.mark.parametrize(
    ("head", "criterion", "expected"),
    [
        (None, nn.CrossEntropyLoss(), None),
        (nn.Softmax(dim=1), nn.CrossEntropyLoss(), "double_softmax"),
        (nn.Sigmoid(), nn.CrossEntropyLoss(), "sigmoid_with_softmax_loss"),
        (None, lambda out, y: nn.functional.mse_loss(out, y.float()[:, None].expand_as(out)), "loss_mismatch"),
    ],
    ids=["healthy", "softmax-twice", "sigmoid", "mse-on-indices"],
)
def test_the_pytorch_hooks_name_the_fault_in_a_plain_loop(head, criterion, expected):
    x, y = blobs()
    result = _loop(_flat(head), x, y, criterion, x_train=x[:200], y_train=y[:200]).diagnosis()
    if expected is None:
        assert result.healthy, result.render()
    else:
        assert result.top is not None and result.top.code == expected, result.render()


def test_the_pytorch_hooks_see_training_outrun_a_validation_set_at_chance():
    x, y = blobs()
    y = y.copy()
    y[:200] = np.random.default_rng(0).permutation(y[:200])  # training labels that mean nothing
    doctor = _loop(
        nn.Sequential(nn.Flatten(), nn.Linear(240, 256), nn.ReLU(), nn.Linear(256, 10)),
        x,
        y,
        nn.CrossEntropyLoss(),
        epochs=8,
    )
    codes = doctor.diagnosis().codes()
    assert "train_val_gap" in codes, doctor.diagnosis().render()


def _first(outputs: torch.Tensor, y: torch.Tensor, loss: torch.Tensor, kind: LossKind | None = None) -> dict:
    """Severity per code of what the watch says at the first batch, given the loss the user computed."""
    x, labels = blobs()
    watch = Watch(x, labels)
    found = watch.begin(outputs.detach().numpy(), y.numpy(), kind or LossKind(), reported_loss=float(loss))
    return {f.code: f.severity for f in found}


def test_healthy_first_outputs_raise_no_sigmoid_alarm():
    y = torch.arange(32) % 10
    for logits in (torch.zeros(32, 10), torch.rand(32, 10, generator=torch.manual_seed(0)) * 0.1):
        for kind in (LossKind(), LossKind(applies_softmax=True, sparse=True)):  # PyTorch's, Keras' from_logits
            found = _first(logits, y, nn.functional.cross_entropy(logits, y), kind)
            assert "sigmoid_with_softmax_loss" not in found, found
    squeezed = torch.sigmoid(torch.randn(32, 10, generator=torch.manual_seed(0)))
    assert _first(squeezed, y, nn.functional.cross_entropy(squeezed, y))["sigmoid_with_softmax_loss"] == Severity.ERROR


def test_summed_weighted_and_penalised_cross_entropy_is_no_loss_mismatch_error():
    y = torch.arange(32) % 10
    logits = torch.randn(32, 10, generator=torch.manual_seed(0))
    ce = nn.functional.cross_entropy
    assert "loss_mismatch" not in _first(logits, y, ce(logits, y, reduction="sum"))
    weights = torch.linspace(0.2, 5.0, 10)
    assert "loss_mismatch" not in _first(logits, y, ce(logits, y, weight=weights))
    penalised = _first(logits, y, ce(logits, y) + 3.0)  # an L2 penalty written into the loss
    assert penalised.get("loss_mismatch", Severity.INFO) < Severity.ERROR, penalised
    mse = nn.functional.mse_loss(logits, y.float()[:, None].expand_as(logits))
    assert _first(logits, y, mse)["loss_mismatch"] == Severity.ERROR  # a regression loss still is one


def test_softmax_outputs_under_a_loss_on_probabilities_are_no_double_softmax():
    y = torch.arange(32) % 10
    probabilities = torch.softmax(torch.randn(32, 10, generator=torch.manual_seed(0)), dim=1)
    nll = nn.functional.nll_loss(torch.log(probabilities), y)  # NLLLoss on log p: right
    assert "double_softmax" not in _first(probabilities, y, nll)
    twice = nn.functional.cross_entropy(probabilities, y)  # nn.CrossEntropyLoss on p: softmax twice
    assert _first(probabilities, y, twice)["double_softmax"] == Severity.ERROR


def _history(watch: Watch, train: list[float], val: list[float]) -> list[str]:
    watch.begin(np.zeros((len(watch.y), 10)), watch.y, LossKind(applies_softmax=True, sparse=True))
    for t, v in zip(train, val, strict=True):
        watch.epoch(None, train_accuracy=t, train_loss=2.0, val_accuracy=v)
    return watch.diagnosis().codes()


def test_a_slow_healthy_start_is_no_train_val_gap_and_memorising_is():
    x, y = blobs()
    slow = ([0.11, 0.14, 0.18], [0.10, 0.12, 0.15]), ([0.11, 0.14, 0.18, 0.22, 0.27], [0.10, 0.12, 0.15, 0.2, 0.25])
    for train, val in slow:
        assert "train_val_gap" not in _history(Watch(x, y, n_train=1000), train, val)
    memorising = [0.2, 0.35, 0.5, 0.65, 0.8], [0.1, 0.11, 0.09, 0.1, 0.1]
    assert "train_val_gap" in _history(Watch(x, y, n_train=1000), *memorising)


def test_a_small_sample_skips_the_probe_and_the_label_order_check():
    x, y = blobs(20)
    watch = Watch(x, y, n_train=1000)
    found = {f.code: f.severity for f in watch.begin(np.zeros((20, 10)), y, LossKind(applies_softmax=True))}
    assert found.get("probe") == Severity.INFO and "labels_decoupled" not in found, found
    rng = np.random.default_rng(0)
    for _ in range(30):  # random predictions on 2 clips per class often look like a renaming
        watch.epoch(rng.normal(size=(20, 10)), train_accuracy=0.5)
    result = watch.diagnosis()
    assert "label_order" in result.codes() and "label_order" not in result.codes(Severity.WARNING), result.render()
    assert "labels_decoupled" not in [f.code for f in examine(*blobs(50)).findings]  # 5 per class: the probe runs


def test_padding_is_not_blamed_when_the_model_masks_it():
    x, y = blobs()
    padded = np.concatenate([x, np.zeros((len(x), 30, x.shape[2]), np.float32)], axis=1)  # 70% padding
    head = np.zeros((len(y), 10))

    def codes(**kw) -> list[str]:
        found = Watch(padded, y, **kw).begin(head, y, LossKind(applies_softmax=True))
        return [f.code for f in found if f.severity > Severity.INFO]

    assert "padding_dominates" in codes()
    assert "padding_dominates" not in codes(masked=True)
    assert "padding_dominates" not in codes(lengths=np.full(len(y), 12))
    assert Doctor(padded, y, masked=True, verbose=False).watch.masked
    with pytest.raises(ParameterError, match="lengths"):
        Watch(padded, y, lengths=np.full(5, 12))


def test_a_class_sorted_sample_predicted_right_is_no_collapse():
    x, y = blobs(1000)
    pick = np.concatenate([np.flatnonzero(y == 0)[:70], np.flatnonzero(y == 1)[:30]])  # x_val[:100] of sorted files
    watch = Watch(x[pick], y[pick], n_train=1000)
    watch.begin(np.zeros((100, 10)), y[pick], LossKind(applies_softmax=True))
    watch.epoch(np.eye(10)[y[pick]], train_accuracy=0.9)
    assert "prediction_collapse" not in watch.diagnosis().codes()
    watch.epoch(np.eye(10)[np.zeros(100, int)], train_accuracy=0.9)  # one class for everything: still a collapse
    assert "prediction_collapse" in watch.diagnosis().codes(Severity.ERROR)


def test_the_probe_verdict_comes_from_the_larger_array():
    decoupled = Finding("labels_decoupled", Severity.ERROR, "at chance", {}, "")
    fine = Finding("probe", Severity.INFO, "fine", {}, "")
    scale = Finding("feature_scale", Severity.INFO, "ok", {}, "")
    merged = _merge([decoupled, scale], [fine, scale], train_decides_probe=True)
    assert sorted(f.code for f in merged) == ["feature_scale", "probe"]
    assert [f.code for f in _merge([fine], [decoupled], train_decides_probe=False)] == ["probe"]


def test_the_pytorch_hooks_take_bfloat16_outputs_and_column_targets():
    x, y = blobs()
    doctor = Doctor(x[200:], y[200:], n_train=200, verbose=False)
    model = _flat().to(torch.bfloat16)
    xb, yb = torch.from_numpy(x[:32]).to(torch.bfloat16), torch.from_numpy(y[:32])[:, None]  # targets (B, 1)
    logits = model(xb)
    doctor.on_batch(logits, yb, nn.functional.cross_entropy(logits.float(), yb[:, 0]))
    assert doctor._correct == int((logits.argmax(1) == yb[:, 0]).sum())
    doctor.on_epoch(lambda b: model(b.to(torch.bfloat16)))
    assert doctor.watch.epochs[-1].sample_accuracy is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_pytorch_hooks_run_the_sample_on_the_models_device():
    x, y = blobs()
    doctor = Doctor(x[200:], y[200:], n_train=200, verbose=False)
    model = _flat().cuda()
    logits = model(torch.from_numpy(x[:32]).cuda())
    targets = torch.from_numpy(y[:32]).cuda()
    doctor.on_batch(logits, targets, nn.functional.cross_entropy(logits, targets))
    doctor.on_epoch(model)
    assert doctor.watch.epochs[-1].sample_accuracy is not None


def test_the_keras_callback_wants_the_training_arrays_as_a_pair():
    if importlib.util.find_spec("keras") is None:
        pytest.skip("needs keras (the keras extra)")
    from spoken_digits.diagnose.keras import DoctorCallback

    x, y = blobs()
    with pytest.raises(ParameterError, match="as a pair"):
        DoctorCallback(x, y, x_train=x)


def _python(code: str, home, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "KERAS_HOME")}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean | {"HOME": str(home)} | env
    )


def test_the_keras_callback_imports_with_nothing_set_even_where_keras_json_names_tensorflow(tmp_path):
    if importlib.util.find_spec("keras") is None:
        pytest.skip("needs keras (the keras extra)")
    (tmp_path / ".keras").mkdir()
    (tmp_path / ".keras" / "keras.json").write_text(json.dumps({"backend": "tensorflow"}))
    code = "import spoken_digits.diagnose.keras\nimport keras\nprint(keras.backend.backend())"
    run = _python(code, tmp_path)
    assert run.returncode == 0 and run.stdout.split()[-1] == "torch", run.stderr
    chosen = _python(code, tmp_path, KERAS_BACKEND="jax")  # a backend the user chose is kept, even a missing one
    assert chosen.returncode != 0 and "jax is not installed" in chosen.stderr, chosen.stderr


def test_keras_that_failed_to_import_first_still_runs_the_callback_on_torch(tmp_path):
    if importlib.util.find_spec("keras") is None:
        pytest.skip("needs keras (the keras extra)")
    code = "try:\n    import keras\nexcept ImportError as e:\n    print('failed:', e.name)\n"
    code += "import spoken_digits.diagnose.keras\nimport keras\nprint(keras.backend.backend())"
    run = _python(code, tmp_path)  # keras defaults to tensorflow, which is not installed
    assert run.returncode == 0 and run.stdout.split() == ["failed:", "tensorflow", "torch"], run.stdout + run.stderr


@pytest.mark.parametrize("command", ["predict", "serve"])
@pytest.mark.parametrize(
    ("name", "content"),
    [("notes.txt", b"the model in runs/ reached 97%\n"), ("random.pt", np.random.default_rng(0).bytes(4096))],
    ids=["text-file", "random-bytes"],
)
def test_a_file_that_is_no_checkpoint_gets_one_safe_line_from_the_cli(tmp_path, capsys, command, name, content):
    (tmp_path / name).write_bytes(content)
    sf.write(tmp_path / "clip.wav", np.zeros(4000, np.float32), 8000)
    args = [command, str(tmp_path / name)] + ([str(tmp_path / "clip.wav")] if command == "predict" else [])
    if command == "predict" and name.endswith(".txt"):  # not a model's suffix: an audio file, refused by name
        assert main(args) == 1
        assert f"spoken-digits: error: {tmp_path / name}: not a readable audio file" in capsys.readouterr().err
        return
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines == [
        f"spoken-digits: error: {tmp_path / name}: not a readable spoken-digits checkpoint "
        "(not a PyTorch checkpoint file)"
    ], captured.err
    assert "weights_only" not in captured.err + captured.out and "Traceback" not in captured.err


def test_the_hooks_keep_a_sample_of_the_training_rows_and_still_see_every_leak(monkeypatch):
    """A large training array is read block by block, never copied whole (3-4 copies before; the peak left
    is the examination of the sample, whatever the training size): the watch keeps MAX_TRAIN_EXAMINED rows,
    and still finds validation clips hidden among all of them and a scaler fitted elsewhere, as the
    whole-array checks do."""
    import importlib
    import tracemalloc

    from spoken_digits.diagnose.watch import MAX_TRAIN_EXAMINED

    examine_module = importlib.import_module("spoken_digits.diagnose.examine")  # the package's `examine` is a function
    monkeypatch.setattr(examine_module, "BLOCK_VALUES", 1 << 16, raising=False)  # small blocks for a small array
    x, y = blobs(12100, steps=40, width=40)  # 77 MB of training features
    louder = blobs(500, steps=40, width=40, seed=1)[0] * 1.1 + 0.1  # the scaler's statistics: another set
    x = ((x - louder.mean(axis=(0, 1))) / louder.std(axis=(0, 1))).astype(np.float32)
    train, y_train, val, y_val = x[:12000], y[:12000], x[12000:], y[12000:]
    hidden = np.random.default_rng(3).choice(12000, 50, replace=False)
    train[hidden], y_train[hidden] = val[:50], y_val[:50]  # half the validation clips are training clips too
    tracemalloc.start()
    watch = Watch(val, y_val, x_train=train, y_train=y_train)
    found = watch.begin(np.zeros((len(y_val), 10)), y_val, LossKind(applies_softmax=True, sparse=True))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < train.nbytes / 2, f"peak {peak / 1e6:.1f} MB for a {train.nbytes / 1e6:.1f} MB training array"
    assert watch.x_train is not None and watch.x_train.shape == (MAX_TRAIN_EXAMINED, 40, 40)
    assert watch.y_train is not None and len(watch.y_train) == MAX_TRAIN_EXAMINED
    leak = next(f for f in found if f.code == "split_leak")
    assert leak.severity is Severity.ERROR and leak.evidence["shared_clips"] == 50
    assert "normalisation_leak" in [f.code for f in found]
    assert split_leak(train, val)[0].evidence == leak.evidence  # as the whole-array check finds
    doctor = Doctor(torch.from_numpy(val), torch.from_numpy(y_val), x_train=torch.from_numpy(train),
                    y_train=torch.from_numpy(y_train), verbose=False)  # fmt: skip
    assert doctor.watch.x_train is not None and len(doctor.watch.x_train) == MAX_TRAIN_EXAMINED
    assert [f.evidence["shared_clips"] for f in doctor.watch._leaks] == [50]
