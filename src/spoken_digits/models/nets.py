"""The model registry. Every model maps x (B, T, F) and lengths (B,) to logits (B, n_classes).

Padding is never read as signal: recurrent models pack sequences so the last state is taken at
each clip's own last frame, and pooled readouts average over valid frames only.
"""

from __future__ import annotations

import difflib
import fnmatch
import itertools
import math
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from spoken_digits.errors import ParameterError
from spoken_digits.frontend.features import time_mask


def run_rnn(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `rnn` on (B, T, F) over valid frames only: outputs (B, T, H*dirs) zero-padded, h_n.

    A one-way RNN runs on the padded batch: frames after a clip's end cannot change its earlier
    outputs, so its last state is read at its own last frame (this also exports to ONNX, where
    packed LSTMs do not). A two-way RNN is packed, so its backward pass starts at each clip's end.
    """
    if bool((lengths == x.shape[1]).all()):  # equal lengths: nothing to mask or pack (faster)
        out, state = rnn(x)
        return out, state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
    if not rnn.bidirectional:
        out, _ = rnn(x)
        out = out * time_mask(lengths, x.shape[1])[:, :, None].to(out.dtype)
        index = (lengths - 1).clamp_min(0).to(out.device)[:, None, None].expand(-1, 1, out.shape[2])
        last = out.gather(1, index)[:, 0]  # (B, H): each clip's output at its own last frame
        return out, last[None]  # h_n-shaped: (1, B, H), the top layer's state
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, state = rnn(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, state[0] if isinstance(state, tuple) else state


def last_state(h_n: torch.Tensor, bidirectional: bool) -> torch.Tensor:
    """Top layer's final hidden state (B, H*dirs): forward at the last valid frame, backward at frame 0."""
    return torch.cat([h_n[-2], h_n[-1]], dim=1) if bidirectional else h_n[-1]


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean of (B, T, H) over each clip's valid frames -> (B, H)."""
    mask = time_mask(lengths, x.shape[1])[:, :, None].to(x.dtype)
    return (x * mask).sum(dim=1) / lengths.clamp_min(1)[:, None].to(x.dtype)


class SeedLSTM(nn.Module):
    """The seed's model exactly: LSTM(128) -> Dense(100, relu) -> Dense(10), with Keras' initialisers.

    The softmax is left to the loss (cross-entropy on logits), which is the same function.
    """

    def __init__(self, n_features: int, n_classes: int, hidden: int = 128, dense: int = 100) -> None:
        super().__init__()
        self.rnn = nn.LSTM(n_features, hidden, batch_first=True)
        self.dense = nn.Linear(hidden, dense)
        self.out = nn.Linear(dense, n_classes)
        self._keras_init(hidden)

    @torch.no_grad()
    def _keras_init(self, hidden: int) -> None:
        # Keras LSTM: glorot-uniform input kernel, orthogonal recurrent kernel (per gate block as a
        # whole), zero bias with the forget-gate bias at 1; Dense: glorot-uniform, zero bias.
        p = dict(self.rnn.named_parameters())
        nn.init.xavier_uniform_(p["weight_ih_l0"])
        nn.init.orthogonal_(p["weight_hh_l0"].T)
        p["bias_ih_l0"].zero_()
        p["bias_hh_l0"].zero_()
        p["bias_ih_l0"][hidden : 2 * hidden] = 1.0  # torch and Keras both order gates i, f, g, o
        for layer in (self.dense, self.out):
            nn.init.xavier_uniform_(layer.weight)
            layer.bias.zero_()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        _, h_n = run_rnn(self.rnn, x, lengths)
        return self.out(torch.relu(self.dense(h_n[-1])))


class RecurrentClassifier(nn.Module):
    """A (stacked, optionally bidirectional) LSTM or GRU with a last-state or masked-mean readout."""

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        *,
        cell: str = "lstm",
        hidden: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        readout: str = "last",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if cell not in ("lstm", "gru") or readout not in ("last", "mean"):
            raise ParameterError(f"cell must be lstm|gru and readout last|mean, got {cell!r}, {readout!r}")
        rnn_type = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_type(
            n_features,
            hidden,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.bidirectional, self.readout = bidirectional, readout
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden * (1 + bidirectional), n_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, h_n = run_rnn(self.rnn, x, lengths)
        pooled = last_state(h_n, self.bidirectional) if self.readout == "last" else masked_mean(out, lengths)
        return self.head(pooled)


def max_pool_ceil(x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
    """Ceil-mode max pooling of non-negative (B, C, T, F) by zero padding and a reshaped amax.

    Equal to nn.MaxPool2d(pool, ceil_mode=True) on values >= 0, and about 5x faster on CPU, where
    max_pool2d was the largest cost of a CRNN training step (profiled).
    """
    (pt, pf), (b, c, t, f) = pool, x.shape
    if (pt, pf) == (1, 1):
        return x
    x = F.pad(x, (0, (-f) % pf, 0, (-t) % pt))
    return x.reshape(b, c, x.shape[2] // pt, pt, x.shape[3] // pf, pf).amax(dim=(3, 5))


def masked_batch_norm(norm: nn.modules.batchnorm._BatchNorm, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`norm` applied to (B, C, ...) whose training statistics count only valid positions (`mask`,
    broadcastable to x, 1 on valid frames), so padding never shifts the mean and variance.

    In eval mode, or when nothing is padded, this is `norm(x)` itself (running statistics, ONNX-exportable).
    """
    if not norm.training or bool(mask.all()):
        return norm(x)
    dims = [d for d in range(x.dim()) if d != 1]
    weight = mask.to(x.dtype).expand_as(x)
    count = weight.sum(dims)  # (C,): valid positions per channel
    shape = [1, -1] + [1] * (x.dim() - 2)
    mean = (x * weight).sum(dims) / count
    var = (((x - mean.view(shape)) * weight) ** 2).sum(dims) / count
    tracked = norm.num_batches_tracked
    if norm.running_mean is not None and norm.running_var is not None and tracked is not None:
        with torch.no_grad():
            tracked.add_(1)
            momentum = norm.momentum if norm.momentum is not None else 1.0 / float(tracked)
            unbiased = var * count / (count - 1).clamp_min(1)
            norm.running_mean.lerp_(mean, momentum)
            norm.running_var.lerp_(unbiased, momentum)
    y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + norm.eps)
    return y * norm.weight.view(shape) + norm.bias.view(shape) if norm.affine else y


class ConvBlock(nn.Module):
    """Conv 3x3 -> BatchNorm (statistics over valid frames) -> ReLU -> re-mask padded frames -> max-pool
    (ceil mode) on (B, C, T, F)."""

    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(c_out)
        self.pool_size = pool
        self.time_stride = pool[0]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = time_mask(lengths, x.shape[2])[:, None, :, None]  # (B, 1, T, 1)
        x = torch.relu(masked_batch_norm(self.norm, self.conv(x), mask))
        x = x * mask  # padding stays 0 (>= 0 after ReLU)
        # Ceil-mode pooling of non-negative values over zero padding equals pooling the clip alone.
        lengths = torch.div(lengths + self.time_stride - 1, self.time_stride, rounding_mode="floor")
        return max_pool_ceil(x, self.pool_size), lengths


class CNN(nn.Module):
    """2-D convolutions over the (time, mel) image; each frame's channels x mel bins pooled over time.

    The mel axis is flattened into the features, not averaged away: where energy sits in
    frequency is what tells the digits apart.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        *,
        channels: tuple[int, ...] = (16, 32, 64),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        widths = (1, *channels)
        self.blocks = nn.ModuleList(ConvBlock(a, b, (2, 2)) for a, b in itertools.pairwise(widths))
        width = channels[-1] * _pooled(n_features, len(channels))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width, n_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = (x * time_mask(lengths, x.shape[1])[:, :, None])[:, None]  # zero the padding; (B, 1, T, F)
        for block in self.blocks:
            h, lengths = block(h, lengths)
        h = h.permute(0, 2, 1, 3).flatten(2)  # (B, C, T', F') -> (B, T', C*F')
        pooled = torch.cat([masked_mean(h, lengths), h.amax(dim=1)], dim=1)  # padding is 0, values >= 0
        return self.head(pooled)


class CRNN(nn.Module):
    """Conv encoder pooling only the mel axis (time resolution kept), then a BiGRU, masked mean."""

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        *,
        channels: tuple[int, ...] = (16, 32),
        hidden: int = 128,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        widths = (1, *channels)
        self.blocks = nn.ModuleList(ConvBlock(a, b, (1, 2)) for a, b in itertools.pairwise(widths))
        width = channels[-1] * _pooled(n_features, len(channels))  # channels x pooled mel bins per frame
        self.rnn = nn.GRU(width, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, n_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = (x * time_mask(lengths, x.shape[1])[:, :, None])[:, None]  # zero the padding; (B, 1, T, F)
        for block in self.blocks:
            h, lengths = block(h, lengths)
        h = h.permute(0, 2, 1, 3).flatten(2)  # (B, C, T, F') -> (B, T, C*F')
        out, _ = run_rnn(self.rnn, h, lengths)
        return self.head(masked_mean(out, lengths))


class Conv1D(nn.Module):
    """1-D convolutions over time with the bands as channels (a TDNN), BatchNorm, masked mean+max.

    Each layer sees +-2 frames, so three see about 130 ms at a 10 ms hop: enough for a phone, and
    the pooled readout does not care where in the clip the word sits.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        *,
        hidden: int = 128,
        layers: int = 3,
        kernel: int = 5,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        widths = (n_features, *([hidden] * layers))
        self.convs = nn.ModuleList(nn.Conv1d(a, b, kernel, padding=kernel // 2) for a, b in itertools.pairwise(widths))
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(layers))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, n_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = time_mask(lengths, x.shape[1])[:, None, :].to(x.dtype)  # (B, 1, T)
        h = x.transpose(1, 2) * mask  # (B, F, T): channels are the bands
        for conv, norm in zip(self.convs, self.norms, strict=True):
            norm = cast(nn.BatchNorm1d, norm)
            h = torch.relu(masked_batch_norm(norm, conv(h), mask)) * mask  # padding back to 0 (>= 0 after ReLU)
        h = h.transpose(1, 2)  # (B, T, hidden)
        return self.head(torch.cat([masked_mean(h, lengths), h.amax(dim=1)], dim=1))


class SequenceConv1D(nn.Module):
    """Conv1D's convolutions (same layers, so a word model's can start it), frames paired (20 ms), a
    BiGRU, and per frame the log-probabilities of each class and of "no new word" (the last index,
    CTC's blank). For digit strings: trained with CTC on whole recordings, it needs no word boundaries.
    forward returns (B, ceil(T / 2), n_classes + 1); `output_lengths` gives each clip's valid frames.
    """

    def __init__(self, n_features: int, n_classes: int, *, hidden: int = 128, layers: int = 3, kernel: int = 5) -> None:
        super().__init__()
        widths = (n_features, *([hidden] * layers))
        self.convs = nn.ModuleList(nn.Conv1d(a, b, kernel, padding=kernel // 2) for a, b in itertools.pairwise(widths))
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(layers))
        self.rnn = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, n_classes + 1)

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths + 1, 2, rounding_mode="floor")

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = time_mask(lengths, x.shape[1])[:, None, :].to(x.dtype)  # (B, 1, T)
        h = x.transpose(1, 2) * mask
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = torch.relu(masked_batch_norm(cast(nn.BatchNorm1d, norm), conv(h), mask)) * mask
        h = F.max_pool1d(h, 2, ceil_mode=True)  # (B, hidden, ceil(T / 2))
        h, _ = run_rnn(self.rnn, h.transpose(1, 2), self.output_lengths(lengths))
        return self.head(h).log_softmax(dim=-1)


class Ensemble(nn.Module):
    """K copies of one model, trained side by side as independent models and averaged to predict.

    In training, forward returns every member's logits stacked along the batch, (K*B, classes),
    and the training loop repeats the targets K times: each member learns from its own loss on
    the same batches. In evaluation it returns the mean of the members' log-probabilities.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    @property
    def size(self) -> int:
        return len(self.members)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        outputs = [member(x, lengths) for member in self.members]
        if self.training:
            return torch.cat(outputs)
        return torch.stack([o.log_softmax(dim=1) for o in outputs]).mean(dim=0)


def training_targets(model: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """The targets for `model`'s training-mode output: repeated once per member for an Ensemble."""
    return y.repeat(model.size) if isinstance(model, Ensemble) else y


def _pooled(size: int, times: int) -> int:
    """Length of an axis after `times` ceil-mode halvings."""
    for _ in range(times):
        size = math.ceil(size / 2)
    return size


Factory = Callable[..., nn.Module]

MODELS: dict[str, tuple[Factory, str]] = {
    "seed_lstm": (SeedLSTM, "the seed's LSTM(128) -> Dense(100, relu) -> Dense(10), Keras init"),
    "lstm": (
        lambda f, c, **kw: RecurrentClassifier(f, c, cell="lstm", num_layers=2, **kw),
        "2-layer LSTM(128), last-state readout",
    ),
    "gru": (
        lambda f, c, **kw: RecurrentClassifier(f, c, cell="gru", num_layers=2, **kw),
        "2-layer GRU(128), last-state readout",
    ),
    "bilstm": (
        lambda f, c, **kw: RecurrentClassifier(f, c, cell="lstm", bidirectional=True, readout="mean", **kw),
        "bidirectional LSTM(128), masked mean over time",
    ),
    "cnn": (CNN, "three conv blocks over (time, mel), masked mean+max over time"),
    "crnn": (CRNN, "two conv blocks (mel pooling only) -> BiGRU(128) -> masked mean"),
    "conv1d": (Conv1D, "three 1-D convolutions over time (bands as channels), masked mean+max"),
}
# Models that label every frame (CTC) rather than the clip: trained by train-strings, never by train.
SEQUENCE_MODELS: dict[str, tuple[Factory, str]] = {
    "sequence_conv1d": (SequenceConv1D, "conv1d's convolutions -> 20 ms frames -> BiGRU(128) -> per-frame CTC outputs"),
}


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern."""
    return [name for name in MODELS if fnmatch.fnmatch(name, pattern)]


def create_model(name: str, *, n_features: int, n_classes: int, **params: object) -> nn.Module:
    """Build a registered model; an unknown name lists the valid ones and the closest match.

    `members=K` builds an `Ensemble` of K independently initialised copies.
    """
    if name in SEQUENCE_MODELS:
        factory, _ = SEQUENCE_MODELS[name]
    elif name in MODELS:
        factory, _ = MODELS[name]
    else:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParameterError(f"unknown model {name!r}{hint}; choose one of: {', '.join(MODELS)}")
    members = params.pop("members", 1)
    if not isinstance(members, int) or members < 1:
        raise ParameterError(f"members must be a whole number >= 1, got {members!r}")
    try:
        if members > 1:  # an ensemble of independently initialised copies
            return Ensemble([factory(n_features, n_classes, **params) for _ in range(members)])
        return factory(n_features, n_classes, **params)
    except TypeError as exc:
        raise ParameterError(f"bad hyper-parameters for model {name!r}: {exc}") from None


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
