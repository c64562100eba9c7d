"""A corpus of broken training pipelines, each written the way a user writes it (a few lines of Keras 3
or of plain PyTorch around librosa features), and five healthy ones. The doctor's top finding must name
every fault in both frameworks, and the healthy pipelines (the seed's LSTM, a GRU, a CNN, a CRNN, a
1-D CNN) must get no warning. On the real FSDD when FSDD_ROOT is set (1,200 clips: takes 0-19, 0-4
held out), else on synthetic FSDD-like clips (600).

Where a fault cannot be written in one framework, the nearest one a user of that framework makes
stands in (documented per case): PyTorch has no `from_logits`, and its cross-entropy accepts one-hot
targets, so there the mismatched loss is an MSE against class indices.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from spoken_digits.diagnose import Diagnosis, Severity

librosa = pytest.importorskip("librosa")
os.environ.setdefault("KERAS_BACKEND", "torch")

EPOCHS = 6
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass
class Clips:
    """Recordings sorted by file name, with what each file name says."""

    paths: list[Path]
    digits: np.ndarray
    takes: np.ndarray
    held_out: int  # takes below this are the validation clips
    real: bool  # the FSDD recordings, not synthetic voices


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    root = os.environ.get("FSDD_ROOT")
    if root and any((Path(root) / "recordings").glob("*.wav")):
        paths = sorted((Path(root) / "recordings").glob("*.wav"))
        held_out, real = 5, True
    else:
        from conftest import digit_voice

        folder = tmp_path_factory.mktemp("voices")
        for speaker in range(5):
            for digit in range(10):
                for take in range(12):
                    audio = digit_voice(digit, speaker=speaker, seed=1000 * speaker + 10 * digit + take)
                    sf.write(folder / f"{digit}_s{speaker}_{take}.wav", audio, 8000, subtype="PCM_16")
        paths, held_out, real = sorted(folder.glob("*.wav")), 3, False
    paths = [p for p in paths if int(p.stem.split("_")[2]) < 20]
    return Clips(
        paths,
        np.array([int(p.name.split("_")[0]) for p in paths]),
        np.array([int(p.stem.split("_")[2]) for p in paths]),
        held_out,
        real,
    )


_MEL: dict[tuple[int | None, int], np.ndarray] = {}


def mel_power(c: Clips, *, sr: int | None = None, samples: int = 4000) -> np.ndarray:
    """librosa mel power (N, 80, frames) of every clip, as the seed computed it (cached across cases)."""
    if (sr, samples) not in _MEL:
        mels = []
        for path in c.paths:
            audio, rate = librosa.load(path, sr=sr)
            audio = librosa.util.fix_length(audio, size=samples)
            mels.append(librosa.feature.melspectrogram(y=audio, sr=rate, n_fft=512, hop_length=256, n_mels=80))
        _MEL[sr, samples] = np.stack(mels)
    return _MEL[sr, samples]


def log_mel(c: Clips, **kw: int | None) -> np.ndarray:
    """(N, time, 80) log-mel: power_to_db per clip, transposed to (time, features)."""
    return np.stack([librosa.power_to_db(m, ref=np.max).T for m in mel_power(c, **kw)])


@dataclass
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def split(c: Clips, x: np.ndarray, y: np.ndarray, *, y_val: np.ndarray | None = None, scale_on: str = "train") -> Split:
    """Hold out the first takes, shuffle, and standardise each band (on `scale_on`'s statistics; "" = not)."""
    rng = np.random.default_rng(0)
    train, val = (
        rng.permutation(np.flatnonzero(c.takes >= c.held_out)),
        rng.permutation(np.flatnonzero(c.takes < c.held_out)),
    )
    x_train, x_val = x[train], x[val]
    if scale_on:
        fit = x_train if scale_on == "train" else x_val
        mean, std = fit.mean(axis=(0, 1)), fit.std(axis=(0, 1))
        x_train, x_val = (x_train - mean) / (std + 1e-8), (x_val - mean) / (std + 1e-8)
    return Split(x_train.astype(np.float32), y[train], x_val.astype(np.float32), (y if y_val is None else y_val)[val])


def healthy_data(c: Clips) -> Split:
    return split(c, log_mel(c), c.digits)


# ---- the models, as users write them ----


def keras_model(arch: str, shape: tuple[int, ...], *, head: str = "softmax"):
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    body = {
        "seed_lstm": [layers.LSTM(128), layers.Dense(100, activation="relu")],
        "gru": [layers.GRU(128)],
        "cnn": [
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, activation="relu"),
            layers.GlobalAveragePooling2D(),
        ],
        "crnn": [layers.Conv1D(64, 3, padding="same", activation="relu"), layers.MaxPooling1D(2), layers.GRU(64)],
        "conv1d": [
            layers.Conv1D(64, 3, activation="relu"),
            layers.Conv1D(64, 3, activation="relu"),
            layers.GlobalAveragePooling1D(),
        ],
    }[arch]
    return keras.Sequential([layers.Input(shape), *body, layers.Dense(10, activation=head)])


class TorchNet(nn.Module):
    """The same five architectures in plain PyTorch, ending in logits (or in `head`)."""

    def __init__(self, arch: str, features: int, head: nn.Module | None = None) -> None:
        super().__init__()
        self.arch = arch
        if arch in ("seed_lstm", "gru"):
            self.rnn = (nn.LSTM if arch == "seed_lstm" else nn.GRU)(features, 128, batch_first=True)
            self.out = (
                nn.Sequential(nn.Linear(128, 100), nn.ReLU(), nn.Linear(100, 10))
                if arch == "seed_lstm"
                else nn.Linear(128, 10)
            )
        elif arch == "cnn":
            self.conv = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.ReLU())
            self.out = nn.Linear(32, 10)
        elif arch == "crnn":
            self.conv = nn.Sequential(nn.Conv1d(features, 64, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2))
            self.rnn = nn.GRU(64, 64, batch_first=True)
            self.out = nn.Linear(64, 10)
        else:
            self.conv = nn.Sequential(nn.Conv1d(features, 64, 3), nn.ReLU(), nn.Conv1d(64, 64, 3), nn.ReLU())
            self.out = nn.Linear(64, 10)
        self.head = head or nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, T, F)
        if self.arch in ("seed_lstm", "gru"):
            h = self.rnn(x)[0][:, -1]
        elif self.arch == "cnn":
            h = self.conv(x.unsqueeze(1)).mean(dim=(2, 3))
        elif self.arch == "crnn":
            h = self.rnn(self.conv(x.transpose(1, 2)).transpose(1, 2))[0][:, -1]
        else:
            h = self.conv(x.transpose(1, 2)).mean(dim=2)
        return self.head(self.out(h))


# ---- training, as users write it, with the doctor attached ----


def keras_fit(
    d: Split,
    *,
    arch: str = "seed_lstm",
    head: str = "softmax",
    loss="sparse_categorical_crossentropy",
    lr: float = 1e-3,
    train_arrays: bool = True,
    channel: bool = False,
    stops: bool = False,
) -> Diagnosis:
    """`stops`: the labels do not fit the loss, so `fit` raises before any callback runs (asserted), and
    `doctor.check(model)` says why, as the README tells users."""
    import keras

    from spoken_digits.diagnose.keras import DoctorCallback

    x_train, x_val = (d.x_train[..., None], d.x_val[..., None]) if channel else (d.x_train, d.x_val)
    model = keras_model(arch, x_train.shape[1:], head=head)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=["accuracy"])
    extra = {"x_train": x_train, "y_train": d.y_train} if train_arrays else {}
    doctor = DoctorCallback(x_val[:256], d.y_val[:256], n_train=len(x_train), verbose=False, **extra)
    fit = dict(epochs=EPOCHS, batch_size=32, validation_data=(x_val, d.y_val), callbacks=[doctor], verbose=0)
    if stops:
        with pytest.raises(ValueError, match="shape"):
            model.fit(x_train, d.y_train, **fit)
        assert doctor.diagnosis is None  # no callback ran
        return doctor.check(model)
    model.fit(x_train, d.y_train, **fit)
    assert doctor.diagnosis is not None
    return doctor.diagnosis


def torch_fit(
    d: Split,
    *,
    arch: str = "seed_lstm",
    head: nn.Module | None = None,
    criterion: Callable | None = None,
    lr: float = 1e-3,
    train_arrays: bool = True,
) -> Diagnosis:
    from spoken_digits.diagnose.pytorch import Doctor

    torch.manual_seed(0)
    model = TorchNet(arch, d.x_train.shape[2], head)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = criterion or nn.CrossEntropyLoss()
    x, y = torch.from_numpy(d.x_train), torch.from_numpy(d.y_train).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    extra = {"x_train": d.x_train, "y_train": d.y_train} if train_arrays else {}
    doctor = Doctor(d.x_val[:256], d.y_val[:256], n_train=len(x), optimizer=optimizer, verbose=False, **extra)
    for _ in range(EPOCHS):
        model.train()
        for xb, yb in loader:
            logits = model(xb)
            loss = criterion(logits, yb)
            doctor.on_batch(logits, yb, loss)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        doctor.on_epoch(model)
    return doctor.diagnosis()


# ---- the faults: (how the data are built, what each framework's script gets wrong) ----


def listdir_labels(c: Clips) -> Split:
    """Features from the sorted file list, labels from os.listdir (hash order on ext4, another elsewhere)."""
    names = [c.paths[i].name for i in np.random.default_rng(1).permutation(len(c.paths))]
    return split(c, log_mel(c), np.array([int(n.split("_")[0]) for n in names]))


def scaled_on_test(c: Clips) -> Split:
    return split(c, log_mel(c), c.digits, scale_on="val")


def not_transposed(c: Clips) -> Split:
    """librosa's (80, 16) kept as it is: the model reads 80 'time steps' of 16 'features'."""
    return split(c, np.stack([librosa.power_to_db(m, ref=np.max) for m in mel_power(c)]), c.digits)


def raw_power(c: Clips) -> Split:
    return split(c, mel_power(c).transpose(0, 2, 1), c.digits, scale_on="")


def val_in_train(c: Clips) -> Split:
    d = healthy_data(c)
    return Split(np.concatenate([d.x_train, d.x_val]), np.concatenate([d.y_train, d.y_val]), d.x_val, d.y_val)


def long_padding(c: Clips) -> Split:
    """Every clip zero-padded to 2 s 'to be safe': 63 frames, most of them silence."""
    return split(c, log_mel(c, samples=16000), c.digits)


def assumed_16k(c: Clips) -> Split:
    """A 16 kHz recipe on 8 kHz recordings: librosa resamples them, the top bands stay empty."""
    return split(c, log_mel(c, sr=16000, samples=8000), c.digits)


def string_labels(c: Clips) -> Split:
    """Training labels from the words, numbered by np.unique (sorted as text); validation by digit."""
    words = np.array([WORDS[d] for d in c.digits])
    _, numbered = np.unique(words, return_inverse=True)
    return split(c, log_mel(c), numbered, y_val=c.digits)


def one_hot(d: Split) -> Split:
    return Split(d.x_train, np.eye(10)[d.y_train], d.x_val, np.eye(10)[d.y_val])


def mse_on_indices(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(logits, y.float()[:, None].expand_as(logits))


FAULTS: dict[str, tuple[str, Callable[[Clips], Diagnosis], Callable[[Clips], Diagnosis]]] = {
    "labels_from_listdir": (
        "labels_decoupled",
        lambda c: keras_fit(listdir_labels(c), train_arrays=False),  # the documented DoctorCallback(x, y, n_train)
        lambda c: torch_fit(listdir_labels(c), train_arrays=False),
    ),
    "one_hot_with_sparse_loss": (  # torch: its cross-entropy takes one-hot rows; MSE on class indices instead
        "loss_mismatch",
        lambda c: keras_fit(one_hot(healthy_data(c)), stops=True),
        lambda c: torch_fit(healthy_data(c), criterion=mse_on_indices),
    ),
    "scaled_on_test_statistics": (
        "normalisation_leak",
        lambda c: keras_fit(scaled_on_test(c)),
        lambda c: torch_fit(scaled_on_test(c)),
    ),
    "features_time_swapped": (
        "axes_swapped",
        lambda c: keras_fit(not_transposed(c)),
        lambda c: torch_fit(not_transposed(c)),
    ),
    "raw_mel_power": (
        "unscaled_power",
        lambda c: keras_fit(raw_power(c)),
        lambda c: torch_fit(raw_power(c)),
    ),
    "softmax_then_logits_loss": (
        "double_softmax",
        lambda c: keras_fit(healthy_data(c), loss=_keras_loss(from_logits=True)),
        lambda c: torch_fit(healthy_data(c), head=nn.Softmax(dim=1)),
    ),
    "learning_rate_1": (
        "lr_too_high",
        lambda c: keras_fit(healthy_data(c), lr=1.0),
        lambda c: torch_fit(healthy_data(c), lr=1.0),
    ),
    "sigmoid_with_cross_entropy": (
        "sigmoid_with_softmax_loss",
        lambda c: keras_fit(healthy_data(c), head="sigmoid"),
        lambda c: torch_fit(healthy_data(c), head=nn.Sigmoid()),
    ),
    "validation_clips_in_training": (
        "split_leak",
        lambda c: keras_fit(val_in_train(c)),
        lambda c: torch_fit(val_in_train(c)),
    ),
    "padding_dominates": (
        "padding_dominates",
        lambda c: keras_fit(long_padding(c)),
        lambda c: torch_fit(long_padding(c)),
    ),
    "16k_assumed_for_8k_audio": (
        "sample_rate_mismatch",
        lambda c: keras_fit(assumed_16k(c)),
        lambda c: torch_fit(assumed_16k(c)),
    ),
    "string_labels_sorted_as_text": (
        "label_order",
        lambda c: keras_fit(string_labels(c)),
        lambda c: torch_fit(string_labels(c)),
    ),
}
KERAS_ONLY = {
    "indices_with_categorical_loss": (
        "loss_mismatch",
        lambda c: keras_fit(healthy_data(c), loss="categorical_crossentropy", stops=True),
    ),
}


NEEDS_SPEECH = {  # checks that read statistics of real speech, which the synthetic voices lack
    "features_time_swapped": "which axis is time is read from how fast frames decorrelate; the synthetic "
    "voices are steady vowels, as correlated over 80 ms as across bands (set FSDD_ROOT)",
}


def _keras_loss(*, from_logits: bool):
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


CASES = [pytest.param(name, "keras", id=f"keras-{name}") for name in [*FAULTS, *KERAS_ONLY]]
CASES += [pytest.param(name, "torch", id=f"torch-{name}") for name in FAULTS]


@pytest.mark.parametrize(("fault", "framework"), CASES)
def test_the_top_finding_names_the_fault(clips, fault, framework):
    if fault in NEEDS_SPEECH and not clips.real:
        pytest.skip(NEEDS_SPEECH[fault])
    if fault in KERAS_ONLY:
        expected, run = KERAS_ONLY[fault]
    else:
        expected, keras_run, torch_run = FAULTS[fault]
        run = keras_run if framework == "keras" else torch_run
    result = run(clips)
    assert result.top is not None and result.top.code == expected, result.render()
    assert result.top.severity >= Severity.WARNING


ARCHS = ("seed_lstm", "gru", "cnn", "crnn", "conv1d")


@pytest.mark.parametrize("framework", ["keras", "torch"])
@pytest.mark.parametrize("arch", ARCHS)
def test_healthy_pipelines_get_no_warning(clips, arch, framework):
    d = healthy_data(clips)
    result = keras_fit(d, arch=arch, channel=arch == "cnn") if framework == "keras" else torch_fit(d, arch=arch)
    assert result.healthy, result.render()
    assert {"probe", "time_axis", "feature_scale"} <= set(result.codes())
