"""The doctor: unit tests on synthetic arrays, and a fault-injection suite on the real FSDD."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from spoken_digits.apps.cli import main
from spoken_digits.config import preset
from spoken_digits.diagnose import (
    Diagnosis,
    Finding,
    PipelineArrays,
    Severity,
    TrainingMonitor,
    diagnose_arrays,
    diagnose_history,
    diagnose_run,
    pipeline_arrays,
)
from spoken_digits.errors import ParameterError
from spoken_digits.models.nets import create_model

SEED_HISTORY = [
    0.10355556011199951, 0.09955555945634842, 0.1137777790427208, 0.1088888868689537,
    0.09022222459316254, 0.10711111128330231, 0.1088888868689537, 0.10488889366388321,
    0.10355556011199951, 0.109333336353302, 0.10533333569765091, 0.10311111062765121,
    0.1088888868689537, 0.10355556011199951,
]  # fmt: skip


def test_the_seeds_history_is_read_as_one_constant_class_per_epoch():
    result = diagnose_history(SEED_HISTORY, 2250)
    assert result.top is not None and result.top.code == "prediction_collapse"
    assert result.top.evidence["whole_counts"] is True
    assert result.top.evidence["correct_counts"][:3] == [233, 224, 256]


def test_a_learning_history_is_not_flagged():
    rising = [0.1, 0.11, 0.2, 0.4, 0.6, 0.8, 0.9]
    assert diagnose_history(rising, 2250).healthy


def test_history_input_is_checked():
    with pytest.raises(ParameterError, match="n_train"):
        diagnose_history(SEED_HISTORY, 0)
    with pytest.raises(ParameterError, match="fractions"):
        diagnose_history([10.0, 11.0, 12.0], 100)


def test_findings_rank_by_severity_then_cause_before_symptom():
    symptom = Finding("prediction_collapse", Severity.ERROR, "", {}, "")
    cause = Finding("unscaled_power", Severity.ERROR, "", {}, "")
    note = Finding("probe", Severity.INFO, "", {}, "")
    assert Diagnosis([note, symptom, cause]).codes() == ["unscaled_power", "prediction_collapse", "probe"]
    with pytest.raises(ValueError, match="unregistered"):
        Finding("made_up", Severity.INFO, "", {}, "")


def _blobs(n: int = 300, steps: int = 12, width: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Separable (N, T, F) arrays: each class lights up its own pair of bands, with smooth time envelopes."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    x = rng.normal(0, 0.3, (n, steps, width)).astype(np.float32)
    envelope = np.sin(np.linspace(0, np.pi, steps))[None, :, None]
    bands = np.zeros((n, 1, width), np.float32)
    bands[np.arange(n), 0, 2 * y] = 3
    bands[np.arange(n), 0, 2 * y + 1] = 3
    return x + envelope * bands + envelope, y


@pytest.mark.parametrize(("softmax", "expected"), [(True, ["double_softmax"]), (False, [])])
def test_the_monitor_sees_double_softmax_in_any_loop_and_is_quiet_on_logits(softmax, expected):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 10), nn.Softmax(dim=1) if softmax else nn.Identity())
    monitor = TrainingMonitor(10)
    x, y = torch.randn(32, 8), torch.arange(32) % 10
    outputs = model(x)
    loss = nn.functional.cross_entropy(outputs, y)
    loss.backward()
    monitor.observe(outputs, y, loss, model)
    assert [f.code for f in monitor.findings()] == expected


def test_synthetic_arrays_get_a_clean_bill_and_labels_out_of_range_an_error():
    x, y = _blobs()
    assert diagnose_arrays(x, y, dynamics=False).healthy
    bad = diagnose_arrays(x, y + 5, n_classes=10, dynamics=False)
    assert bad.top is not None and bad.top.code == "label_format"


def test_diagnose_arrays_takes_a_channel_axis_as_the_training_hooks_do():
    x, y = _blobs()
    flat = diagnose_arrays(x, y, dynamics=False)
    for shaped in (x[..., None], x[:, None]):  # Keras' (N, T, F, 1), torch's (N, 1, T, F)
        assert diagnose_arrays(shaped, y, dynamics=False).codes() == flat.codes()
    with pytest.raises(ParameterError, match="channel axis of 1"):
        diagnose_arrays(np.stack([x, x], axis=-1), y, dynamics=False)


def test_the_cli_diagnoses_npz_arrays_and_writes_json(tmp_path, capsys):
    x, y = _blobs()
    np.savez(tmp_path / "arrays.npz", X=np.zeros_like(x), y=y)
    code = main(["diagnose", "--data", str(tmp_path / "arrays.npz"), "--json", "--out", str(tmp_path / "d")])
    printed = json.loads(capsys.readouterr().out)
    assert code == 1 and printed["findings"][0]["code"] == "constant_input"
    assert json.loads((tmp_path / "d" / "diagnosis.json").read_text())["findings"][0]["code"] == "constant_input"
    assert set(printed["findings"][0]) == {"code", "severity", "title", "evidence", "fix"}


def test_the_cli_reads_a_keras_history_and_rejects_bad_inputs(tmp_path, capsys):
    (tmp_path / "h.json").write_text(json.dumps({"loss": [2.3] * 14, "accuracy": SEED_HISTORY}))
    assert main(["diagnose", "--history", str(tmp_path / "h.json"), "--n-train", "2250"]) == 1
    assert "prediction_collapse" in capsys.readouterr().out
    assert main(["diagnose", "--history", str(tmp_path / "h.json")]) == 2
    assert "--n-train" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert main(["diagnose", "--data", str(tmp_path / "bad.npz")]) == 2
    assert "bad.npz" in capsys.readouterr().err


# ---- fault injection on the real FSDD: each broken pipeline's top finding must name its fault ----


@pytest.fixture(scope="module")
def healthy(fsdd_root):
    """The clean pipeline's training arrays (official split): standardised log-mel, (N, 16, 80)."""
    return pipeline_arrays(preset("clean"), data=fsdd_root, download=False)


class SoftmaxOutput(nn.Module):
    """The seed's LSTM with a softmax on its output, trained with a loss that applies softmax again."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = create_model("seed_lstm", n_features=80, n_classes=10)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.inner(x, lengths), dim=1)


def _fault(name: str, a: PipelineArrays, root: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    x, y, n = a.x, a.y, len(a.y)
    listdir = np.random.default_rng(0).permutation(n)  # the order os.listdir might give
    if name == "zeros":
        return np.zeros_like(x), y, {}
    if name == "constant":
        return np.full_like(x, -80.0), y, {}
    if name == "shuffled_labels":
        return x, np.random.default_rng(1).permutation(y), {}
    if name == "labels_off_by_one":
        return x[listdir], np.roll(y[listdir], 1), {}
    if name == "raw_power":
        power = pipeline_arrays(preset("seed"), data=root, download=False)
        return power.x, power.y, {}
    if name == "axes_swapped":
        return np.ascontiguousarray(x.transpose(0, 2, 1)), y, {}
    if name == "reshape_not_transpose":
        return np.ascontiguousarray(x.transpose(0, 2, 1)).reshape(x.shape), y, {}
    if name == "lr_0.1":
        return x, y, {"lr": 0.1}
    if name == "nan":
        broken = x.copy()
        broken[::50, 3, 7] = np.nan
        return broken, y, {}
    if name == "padding_90":
        return np.concatenate([x, np.zeros((n, 9 * x.shape[1], x.shape[2]), x.dtype)], axis=1), y, {}
    if name == "double_softmax":
        return x, y, {"model": SoftmaxOutput}
    raise AssertionError(name)


FAULTS = {
    "zeros": "constant_input",
    "constant": "constant_input",
    "shuffled_labels": "labels_decoupled",
    "labels_off_by_one": "labels_misaligned",
    "raw_power": "unscaled_power",
    "axes_swapped": "axes_swapped",
    "reshape_not_transpose": "reshape_not_transpose",
    "lr_0.1": "lr_too_high",
    "nan": "nan_values",
    "padding_90": "padding_dominates",
    "double_softmax": "double_softmax",
}


@pytest.mark.fsdd
@pytest.mark.parametrize("fault", FAULTS)
def test_the_top_finding_names_the_injected_fault(fault, healthy, fsdd_root):
    x, y, options = _fault(fault, healthy, fsdd_root)
    result = diagnose_arrays(x, y, n_classes=10, **options)
    assert result.top is not None and result.top.code == FAULTS[fault], result.render()
    assert result.top.severity is Severity.ERROR


@pytest.mark.fsdd
def test_the_healthy_clean_pipeline_gets_a_clean_bill(fsdd_root):
    result = diagnose_run(preset("clean"), data=fsdd_root, download=False)
    assert result.healthy, result.render()
    assert {"probe", "lr_range", "time_axis", "feature_scale"} <= set(result.codes())


@pytest.mark.fsdd
def test_the_default_real_recordings_pipeline_gets_a_clean_bill_too(fsdd_root):
    result = diagnose_run(preset("default"), data=fsdd_root, download=False)
    assert result.healthy, result.render()


@pytest.mark.fsdd
def test_the_seed_preset_is_told_its_features_are_raw_power(fsdd_root):
    result = diagnose_run(preset("seed"), data=fsdd_root, download=False)
    assert result.top is not None and result.top.code == "unscaled_power"
    assert "truncated_clips" in result.codes(Severity.WARNING)


def _keras():
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")  # the only backend installed with the test extra
    import keras

    from spoken_digits.diagnose.keras import DoctorCallback

    return keras, DoctorCallback


def _keras_seed_model(keras, *, from_logits: bool):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.layers.Input((12, 20)),
            keras.layers.LSTM(32),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, metrics=["accuracy"])
    return model


@pytest.mark.parametrize(
    ("inputs", "from_logits", "expected"),
    [("blobs", False, None), ("blobs", True, "double_softmax"), ("zeros", False, "constant_input")],
)
def test_the_keras_callback_names_the_fault_inside_fit(inputs, from_logits, expected):
    keras, DoctorCallback = _keras()
    x, y = _blobs()
    if inputs == "zeros":
        x = np.zeros_like(x)
    doctor = DoctorCallback(x[:100], y[:100], n_train=len(x), verbose=False)
    _keras_seed_model(keras, from_logits=from_logits).fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[doctor])
    assert doctor.diagnosis is not None
    if expected is None:
        assert doctor.diagnosis.healthy, doctor.diagnosis.render()
    else:
        assert doctor.diagnosis.top is not None and doctor.diagnosis.top.code == expected, doctor.diagnosis.render()


def test_the_short_training_run_handles_ensembles():
    x, y = _blobs()
    ensemble = lambda: create_model("conv1d", n_features=20, n_classes=10, hidden=16, members=2)  # noqa: E731
    result = diagnose_arrays(x, y, model=ensemble)
    assert result.healthy, result.render()


def test_an_embedding_is_not_read_as_bands():
    """The speech encoder's frames overlap (a 775 ms window every 80 ms), so its embeddings are smooth along
    time and unrelated across dimensions: as bands that reads as swapped axes; as an embedding it is time."""
    from spoken_digits.diagnose.examine import examine

    rng = np.random.default_rng(0)
    x = np.cumsum(rng.standard_normal((200, 16, 96)), axis=1).astype(np.float32)  # smooth in time only
    y = rng.integers(0, 10, 200)
    lengths = np.full(200, 16)
    as_bands = examine(x, y, lengths=lengths, n_classes=10).findings
    as_embedding = examine(x, y, lengths=lengths, n_classes=10, spectral=False).findings
    assert "axes_swapped" in [f.code for f in as_bands]
    assert [f.code for f in as_embedding if f.code in ("axes_swapped", "time_axis")] == ["time_axis"]
