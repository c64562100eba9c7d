"""A labelled dataset in one shape, whatever its layout: clips (file, label, speaker, own split) and classes."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spoken_digits.errors import DatasetError

SPLITS = ("train", "validation", "test")  # a source's own split names, as Speech Commands and HF audiofolder use
SPLIT_ALIASES = {
    **dict.fromkeys(("train", "training"), "train"),
    **dict.fromkeys(("validation", "valid", "val", "dev"), "validation"),
    **dict.fromkeys(("test", "testing", "eval"), "test"),
}


@dataclass(frozen=True)
class Clip:
    """One labelled recording. `speaker` is "" when unknown; `split` is the source's own ("" when it has none)."""

    path: Path
    label: str
    speaker: str = ""
    split: str = ""


@dataclass(frozen=True)
class DataOptions:
    """The options a dataset was opened with that decide which clips it holds and how they split.

    Saved with a run (data.json, the checkpoint's info) so that `evaluate` and `--resume` see the same clips.
    None means "not given": `over` fills it from another set (the run's own).
    """

    speaker_pattern: str | None = None
    classes: str | None = None
    skip_bad: bool | None = None
    mixed_rates: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: object) -> DataOptions:
        """The options in a saved record (unknown keys ignored; None or a non-dict gives no options)."""
        if not isinstance(values, Mapping):
            return cls()
        return cls(**{f.name: values.get(f.name) for f in dataclasses.fields(cls)})

    def over(self, saved: DataOptions) -> DataOptions:
        """These options, with each one not given taken from `saved`."""
        return DataOptions(**{k: saved.to_dict()[k] if v is None else v for k, v in self.to_dict().items()})

    def differences(self, saved: DataOptions) -> list[str]:
        """'--option: A now, B in the run' for each option that differs from `saved` (False and None alike)."""
        return [
            f"--{k.replace('_', '-')}: {_shown(v)} now, {_shown(saved.to_dict()[k])} in the run"
            for k, v in self.to_dict().items()
            if (v or None) != (saved.to_dict()[k] or None)
        ]


def _shown(value: object) -> str:
    return "not given" if value in (None, False) else "given" if value is True else repr(value)


FILLER = "_unknown_"  # the class of speech that is no word of the model (keyword spotters' filler or unknown)
FILLER_FOLDERS = ("_unknown_", "_background_")  # class folders read as FILLER clips


@dataclass(frozen=True)
class Dataset:
    """Clips of one source in a stable order (by file name, then path) and the class names, in label order.

    The order is the same whichever layout holds the same files, so splits and runs repeat across layouts.
    """

    clips: list[Clip]
    classes: tuple[str, ...]
    source: str  # fsdd, folders, manifest or speech-commands
    root: Path
    noise: tuple[Path, ...] = ()  # background recordings the source ships (Speech Commands' _background_noise_)
    skipped: dict[str, str] = field(default_factory=dict)  # file -> why, for files left out with --skip-bad
    notes: tuple[str, ...] = ()  # what reading it left out or could not use, for the user to read
    options: DataOptions = DataOptions()  # how it was opened (open_dataset)
    unknown_speaker: str = ""  # where the first clip without a speaker comes from, when some have one

    @property
    def labels(self) -> np.ndarray:
        """Each clip's class index (int64, (N,))."""
        index = {name: i for i, name in enumerate(self.classes)}
        return np.array([index[c.label] for c in self.clips], dtype=np.int64)

    @property
    def speakers(self) -> np.ndarray:
        return np.array([c.speaker for c in self.clips])

    @property
    def has_speakers(self) -> bool:
        return all(c.speaker for c in self.clips)

    def describe(self) -> str:
        """One line: how many clips, classes and speakers, from where."""
        speakers = f", {len(set(self.speakers.tolist()))} speakers" if self.has_speakers else ", speakers unknown"
        own = sorted({c.split for c in self.clips} - {""})
        split = f", its own split ({'/'.join(own)})" if own else ""
        return f"{len(self.clips)} clips, {len(self.classes)} classes{speakers}{split} ({self.source} at {self.root})"

    def subset(self, keep: Iterable[int]) -> Dataset:
        """The dataset with only the clips at `keep` (classes unchanged: a model's outputs stay in place)."""
        return dataclasses.replace(self, clips=[self.clips[i] for i in keep])


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key reading digit runs as numbers: 2 before 10 (plain string order would number "10" before "2")."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part)


def build(
    clips: Sequence[Clip],
    source: str,
    root: Path,
    *,
    noise: Sequence[Path] = (),
    notes: Sequence[str] = (),
    unknown_speaker: str = "",
) -> Dataset:
    """A Dataset from clips in any order: sorted by (file name, path), classes in natural order (FILLER last)."""
    ordered = sorted(clips, key=lambda c: (c.path.name, str(c.path)))
    classes = tuple(sorted({c.label for c in ordered}, key=lambda c: (c == FILLER, natural_key(c))))  # filler last
    return Dataset(ordered, classes, source, root, tuple(noise), notes=tuple(notes), unknown_speaker=unknown_speaker)


def file_digest(path: Path) -> str:
    """The blake2b-128 hex digest of a file's bytes, as the clip cache (data/cache.py) records it."""
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


def own_split(value: str, where: str) -> str:
    """A split name as a source spells it, normalised to train/validation/test; anything else is an error."""
    name = SPLIT_ALIASES.get(value.strip().lower())
    if name is None:
        raise DatasetError(f"{where}: unknown split {value!r}; use train, validation or test")
    return name
