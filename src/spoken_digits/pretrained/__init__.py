"""Model files that ship inside the package: the speech detector, and the pretrained digit model.

- `silero_vad.onnx`: silero-vad's detector (MIT, LICENSE-silero-vad), from the silero-vad 6.2.3 wheel.
  It is kept here because that wheel depends on torch, which the lean runtime must not need.
- `digits.onnx` + `digits.json`: the default recipe trained on all of FSDD and exported with
  `make pretrained` (its card: config, training metrics, sha256, the command). `predict`, `listen`
  and `serve` use it when no model is given. Licences and attribution: NOTICE.md beside them.

Each file is checked against its sha256 before use: a damaged install gets a clear error, never a
model that answers wrongly.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from spoken_digits.errors import CheckpointError

DETECTOR = "silero_vad.onnx"
DETECTOR_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
MODEL, CARD = "digits.onnx", "digits.json"


def folder() -> Path:
    """Where the packaged files are (inside the installed package)."""
    return Path(str(resources.files(__name__)))


def _checked(path: Path, sha256: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: missing from this install ({exc.strerror}); reinstall spoken-digits") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise CheckpointError(f"{path}: damaged (its sha256 is not the one recorded); reinstall spoken-digits")
    return data


@functools.cache
def detector_bytes() -> bytes:
    """The speech detector's ONNX graph, checked."""
    return _checked(folder() / DETECTOR, DETECTOR_SHA256)


def card() -> dict[str, Any]:
    """The packaged model's card (digits.json): how it was made, its metrics and its sha256."""
    path = folder() / CARD
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"this install has no pretrained model ({path}: {exc}); give a model file, or build it: make pretrained"
        ) from None
    if not isinstance(found, dict) or "sha256" not in found:
        raise CheckpointError(f"{path}: not a model card (no sha256)")
    return found


@functools.cache
def default_model() -> Path:
    """The packaged digit model's path, after checking it against the card's sha256."""
    path = folder() / MODEL
    _checked(path, str(card()["sha256"]))
    return path
