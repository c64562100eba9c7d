"""Checkpoints: everything a prediction needs, in a file `torch.load(weights_only=True)` accepts.

The file holds only tensors, strings, numbers, lists and dicts: the run config (audio, features,
model name and hyper-parameters), class names, standardiser statistics, weights and metrics.
Loading never unpickles arbitrary objects, and refuses foreign files and unknown versions.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spoken_digits.atomic import atomic_path
from spoken_digits.config import RunConfig
from spoken_digits.errors import CheckpointError, SpokenDigitsError
from spoken_digits.frontend.features import Featurizer
from spoken_digits.models.nets import create_model

FORMAT = "spoken-digits"
VERSION = 1


@dataclass
class Checkpoint:
    """A trained model and the settings that produced its inputs."""

    config: RunConfig
    classes: list[str]
    model_state: dict[str, torch.Tensor]
    featurizer_state: dict[str, torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)  # fold, metrics, epochs: JSON-able extras

    def build(self) -> tuple[Featurizer, nn.Module]:
        """The featurizer and model with their trained state, in eval mode."""
        cfg = self.config
        featurizer = Featurizer(cfg.audio.sr, cfg.features, pretrained=False)  # the state below fills it
        model = create_model(cfg.model.name, n_features=cfg.n_features, n_classes=len(self.classes), **cfg.model.params)
        try:
            featurizer.load_state_dict(self.featurizer_state)
            model.load_state_dict(self.model_state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"checkpoint weights do not fit model {cfg.model.name!r}: {first}") from None
        return featurizer.eval(), model.eval()


def save(path: str | os.PathLike[str], ckpt: Checkpoint) -> None:
    """Write `ckpt` to `path` atomically."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": ckpt.config.to_dict(),
        "classes": list(ckpt.classes),
        "model_state": ckpt.model_state,
        "featurizer_state": ckpt.featurizer_state,
        "info": json.loads(json.dumps(ckpt.info)),  # plain JSON types only, as weights_only loading demands
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _unreadable(path: Path, exc: Exception) -> str:
    """Why torch.load refused `path`, in our words: torch's own text advises turning safe loading off."""
    if path.stat().st_size == 0:
        return "the file is empty"
    if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in str(exc):
        return "it holds Python objects other than tensors and plain data, which are never loaded"
    if isinstance(exc, zipfile.BadZipFile) or "zip archive" in str(exc):
        return "damaged or truncated archive"
    if isinstance(exc, OSError):
        return f"cannot read it: {exc.strerror or type(exc).__name__}"
    return "not a PyTorch checkpoint file"


def load(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint safely; any problem is a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler fails in many ways on foreign bytes (KeyError, IndexError, ...)
        raise CheckpointError(f"{path}: not a readable spoken-digits checkpoint ({_unreadable(path, exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a spoken-digits checkpoint (a model saved by another tool?)")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {payload.get('version')!r} is not supported (this "
            f"spoken-digits reads version {VERSION})"
        )
    try:
        return Checkpoint(
            config=RunConfig.from_dict(payload["config"]),
            classes=[str(c) for c in payload["classes"]],
            model_state=payload["model_state"],
            featurizer_state=payload["featurizer_state"],
            info=payload.get("info", {}),
        )
    except (KeyError, TypeError, SpokenDigitsError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint ({exc})") from None
