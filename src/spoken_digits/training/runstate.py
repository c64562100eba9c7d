"""What a training run has done so far, kept on disk so an interrupted run continues where it stopped.

`DIR/.state/FOLD.pt` holds the training state after the last finished epoch (weights, optimiser,
random generators, history), `DIR/.state/FOLD.done.json` the scores of a finished fold. Both are
written atomically, so a kill at any moment leaves the previous good state. The folder is removed
when the run completes.
"""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from spoken_digits.atomic import atomic_path, write_json
from spoken_digits.errors import CheckpointError

STATE_DIR = ".state"


class RunState:
    """The progress files of the run in `out`."""

    def __init__(self, out: Path) -> None:
        self.folder = Path(out) / STATE_DIR

    def exists(self) -> bool:
        """Whether an unfinished run left progress here."""
        return self.folder.is_dir() and any(self.folder.iterdir())

    def begin(self) -> None:
        """Mark the run as started (its config is written): resumable from now on, even before an epoch ends."""
        write_json(self.folder / "started.json", {})

    def training(self, fold: str) -> dict[str, Any] | None:
        """The saved training state of `fold`, or None if it never finished an epoch."""
        path = self.folder / f"{fold}.pt"
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as exc:
            raise CheckpointError(f"{path}: unreadable training state ({exc}); delete it to restart the fold") from None

    def save_training(self, fold: str, state: dict[str, Any]) -> None:
        """Replace `fold`'s training state atomically."""
        with atomic_path(self.folder / f"{fold}.pt") as tmp:
            torch.save(state, tmp)

    def finished(self, fold: str) -> dict[str, Any] | None:
        """The record of a finished fold (metrics and history), or None."""
        path = self.folder / f"{fold}.done.json"
        return json.loads(path.read_text()) if path.exists() else None

    def save_finished(self, fold: str, record: dict[str, Any]) -> None:
        """Mark `fold` finished; its training state is no longer needed."""
        write_json(self.folder / f"{fold}.done.json", record)
        (self.folder / f"{fold}.pt").unlink(missing_ok=True)

    def clear(self) -> None:
        """Remove all progress files (the run is complete)."""
        shutil.rmtree(self.folder, ignore_errors=True)
