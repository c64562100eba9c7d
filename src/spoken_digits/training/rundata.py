"""What a run knows of its data: the fit/validation/test slices and their shares, data.json, the checks on --resume.

The split itself is data/splits.py; this is how a run uses it and what it tells the user about it.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from spoken_digits.config import SplitName
from spoken_digits.data.clips import DataOptions, Dataset
from spoken_digits.data.splits import (
    Fold,
    TooFewSpeakers,
    effective,
    hold_out_speakers,
    speakers_shortfall,
    stratified_split,
)
from spoken_digits.errors import ParameterError
from spoken_digits.training.corpus import Corpus

DIGEST_CHARS = 16  # of a training file's digest kept in the checkpoint: 64 bits tell files apart


def trained_digests(digests: list[str], train: np.ndarray) -> list[str]:
    """The (shortened) content digests of the clips a model was trained on, sorted, for `evaluate`'s check."""
    return sorted({digests[i][:DIGEST_CHARS] for i in train if digests[i]})


def shares(n_fit: int, n_val: int, n_test: int) -> dict[str, float]:
    """Each side's share of the clips the fold uses (rounded to 0.1%)."""
    total = max(n_fit + n_val + n_test, 1)
    return {"train": round(n_fit / total, 3), "validation": round(n_val / total, 3), "test": round(n_test / total, 3)}


def training_slices(corpus: Corpus, fold: Fold, val_fraction: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) indices within the fold's training clips: the dataset's own validation clips when it
    has them (Speech Commands' list, a split column or folder); whole speakers for the speakers split when
    enough speakers are left (else clips at random, as `fold_summary` says); else a stratified `val_fraction`."""
    own = np.array([corpus.data.clips[i].split == "validation" for i in fold.train], dtype=bool)
    if own.any():
        return fold.train[~own], fold.train[own]
    if fold.name == "speakers" and val_fraction > 0:  # a speaker-disjoint test: validate on unseen speakers too
        speakers = corpus.speakers[fold.train]
        with contextlib.suppress(TooFewSpeakers):
            held = np.isin(speakers, hold_out_speakers(speakers, val_fraction, seed=seed))
            return fold.train[~held], fold.train[held]
    keep, held = stratified_split(corpus.labels[fold.train].numpy(), val_fraction, seed=seed)
    return fold.train[keep], fold.train[held]


def fold_summary(corpus: Corpus, fold: Fold, fit: np.ndarray, val: np.ndarray) -> str:
    """One line: the real train/validation/test shares of a fold, and which speakers each side holds out."""
    share = shares(len(fit), len(val), len(fold.test))
    line = (
        f"fold {fold.name}: train {share['train']:.1%}, validation {share['validation']:.1%}, "
        f"test {share['test']:.1%} of {len(fit) + len(val) + len(fold.test)} clips"
    )
    if fold.name == "speakers":
        line += f"; test speakers: {', '.join(sorted(set(corpus.speakers[fold.test].tolist())))}"
        held = sorted(set(corpus.speakers[val].tolist()))
        if any(corpus.data.clips[i].split == "validation" for i in val):
            line += "; validation: the dataset's own"
        elif len(val) and not set(held) & set(corpus.speakers[fit].tolist()):
            line += f"; validation speakers: {', '.join(held)}"
        elif len(val):
            line += "; validation: clips at random (too few training speakers to hold whole ones out)"
    return line


def data_record(data: Dataset) -> dict[str, Any]:
    """What a run folder keeps of its dataset (data.json), so that --resume can refuse another one, or another
    way of reading it (the options that decide its clips and their split)."""
    return {
        "data": data.describe(),
        "root": str(data.root),
        "source": data.source,
        "classes": list(data.classes),
        "options": data.options.to_dict(),
    }


def saved_data(out: str | os.PathLike[str]) -> tuple[str | None, DataOptions]:
    """The dataset root and data options a run in `out` started with (None and no options before data.json)."""
    saved = Path(out) / "data.json"
    if not saved.is_file():
        return None, DataOptions()
    record = json.loads(saved.read_text())
    return record.get("root"), DataOptions.from_dict(record.get("options"))


def check_same_data(out: Path, data: Dataset) -> None:
    """--resume on another dataset than the run started with, or with other data options, is an error (it would
    mix two datasets, or two splits of one)."""
    saved = out / "data.json"
    if not saved.is_file():  # runs started before data.json existed: FSDD
        return
    record = json.loads(saved.read_text())
    if (record["root"], record["classes"]) != (str(data.root), list(data.classes)):
        raise ParameterError(
            f"{out} started on {record['data']}; resume it with the same --data (and --classes), "
            f"not {data.describe()}"
        )
    if "options" in record and (changed := data.options.differences(DataOptions.from_dict(record["options"]))):
        raise ParameterError(
            f"{out} started with other data options: {'; '.join(changed)} now; they decide the clips and the "
            "split, so resume with the run's own (give none of them and --resume uses the saved ones)"
        )


def split_note(dataset: Dataset, name: SplitName, fraction: float = 0.1) -> str:
    """What `official` becomes for a dataset without its own test split, and why (empty otherwise)."""
    used = effective(dataset.clips, name, fraction)
    if used is name:
        return ""
    note = f"; it has no test split of its own, so --split official holds out {used.value}"
    if used is SplitName.RANDOM:
        why = dataset.unknown_speaker or speakers_shortfall(dataset.clips, fraction)
        if not dataset.has_speakers and not dataset.unknown_speaker:
            why = "the speakers are unknown (give --speaker-pattern, or a speaker column in a manifest)"
        note += f" clips (speakers shared between training and test) because {why}"
    return note


def skipped_list(dataset: Dataset) -> str:
    items = [f"{f} ({why})" for f, why in dataset.skipped.items()]
    return "; ".join(items[:5]) + (f" ... and {len(items) - 5} more" if len(items) > 5 else "")
