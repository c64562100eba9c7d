"""One entry point for every data source: `open_dataset(path)` finds the layout and checks the clips.

FSDD (the default, found or downloaded), class folders, a CSV manifest (or an audiofolder's
metadata.csv) and Google Speech Commands all become the same `Dataset`. Problems found before any
audio is decoded (unreadable headers, mixed rates, classes too small, files listed twice) are
errors naming the files; `skip_bad` leaves unreadable files out instead, and counts them.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import soundfile as sf

from spoken_digits.data import fsdd, layouts
from spoken_digits.data.clips import DataOptions, Dataset
from spoken_digits.errors import DatasetError, ParameterError

MIN_CLIPS = 2  # per class: one to learn from and one to hold out, at the very least
SHOWN = 5  # files named in an error before "... and N more"


def open_dataset(
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    speaker_pattern: str | None = None,
    classes: str | None = None,
    skip_bad: bool = False,
    mixed_rates: bool = False,
) -> Dataset:
    """The dataset at `path` (None: FSDD from $FSDD_ROOT, the cache or a download), checked.

    `speaker_pattern` is a regex finding the speaker in a file name (group `speaker` or group 1);
    `classes` a comma-separated subset of class names to keep.
    """
    pattern = _compile(speaker_pattern)
    data = _read(Path(os.path.abspath(path)) if path is not None else None, download, pattern)
    if classes:
        data = keep_classes(data, [c.strip() for c in classes.split(",") if c.strip()])
    data = check_headers(data, skip_bad=skip_bad, mixed_rates=mixed_rates)
    check_class_sizes(data)
    options = DataOptions(speaker_pattern, classes or None, skip_bad, mixed_rates)
    return replace(data, options=options)


def same_source(path: str | os.PathLike[str], root: str) -> bool:
    """Whether `path` (as given to open_dataset) names the dataset whose root is `root` (a run's data_root)."""
    given = Path(os.path.abspath(path))
    candidates = {given, fsdd.recordings_dir(given) if given.is_dir() else given.parent}
    return Path(root) in candidates


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ParameterError(f"--speaker-pattern {pattern!r} is not a regular expression ({exc})") from None


def _read(path: Path | None, download: bool, pattern: re.Pattern[str] | None) -> Dataset:
    if path is None:
        return fsdd.dataset(fsdd.locate(None, download=download))
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
            raise DatasetError(f"{path}: a dataset file must be a CSV manifest (path,label[,speaker][,split])")
        return layouts.read_manifest(path, pattern)
    if (path / "metadata.csv").is_file():
        return layouts.read_manifest(path / "metadata.csv", pattern)
    if layouts.is_speech_commands(path):
        return layouts.read_speech_commands(path)
    folder = fsdd.recordings_dir(path)
    top = layouts.audio_files(folder)
    if top and all(fsdd.is_fsdd_name(p.name) for p in top):
        return fsdd.dataset(folder)  # FSDD's file names carry the speakers
    if top:
        raise DatasetError(
            f"{path}: audio files at the top level ({top[0].name}, ...) but they are not FSDD's "
            "{digit}_{speaker}_{take}.wav; put each class in its own folder, or list them in a CSV manifest"
        )
    return layouts.read_folders(path, pattern)


def keep_classes(data: Dataset, names: list[str]) -> Dataset:
    """Only the clips of the named classes (e.g. Speech Commands' ten digit words)."""
    unknown = [n for n in names if n not in data.classes]
    if unknown:
        raise ParameterError(f"--classes: {', '.join(unknown)} not in this dataset; it has: {', '.join(data.classes)}")
    wanted = [c for c in data.classes if c in names]
    kept = [c for c in data.clips if c.label in wanted]
    return replace(data, clips=kept, classes=tuple(wanted))


def check_headers(data: Dataset, *, skip_bad: bool, mixed_rates: bool) -> Dataset:
    """Read every file's header: unreadable files are an error (or skipped and counted), mixed rates too."""
    bad: dict[str, str] = {}
    rates: dict[int, list[Path]] = defaultdict(list)
    for clip in data.clips:
        try:
            info = sf.info(clip.path)
            if info.frames == 0:
                raise RuntimeError("no audio frames (empty)")
            rates[int(info.samplerate)].append(clip.path)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            bad[str(clip.path)] = str(exc).strip() or type(exc).__name__
    if bad and not skip_bad:
        raise DatasetError(
            f"{len(bad)} unreadable file(s): "
            + _listing([f"{f} ({why})" for f, why in bad.items()])
            + "; fix or remove them, or pass --skip-bad to leave them out"
        )
    if len(rates) > 1 and not mixed_rates:
        shares = ", ".join(f"{rate} Hz: {len(files)} files, e.g. {files[0]}" for rate, files in sorted(rates.items()))
        raise DatasetError(
            f"mixed sample rates ({shares}); every clip is resampled to the model's rate, "
            "so if that is what you want, pass --mixed-rates"
        )
    if not bad:
        return data
    kept = [c for c in data.clips if str(c.path) not in bad]
    return replace(data, clips=kept, skipped={**data.skipped, **bad})


def check_class_sizes(data: Dataset) -> None:
    """Every class needs MIN_CLIPS clips: a class with fewer is named with its files."""
    if not data.clips:
        raise DatasetError(f"{data.root}: no usable clips")
    counts = Counter(c.label for c in data.clips)
    small = [name for name in data.classes if counts[name] < MIN_CLIPS]
    if small:
        files = [f"{c.label}: {c.path}" for c in data.clips if c.label in small]
        empty = [name for name in small if counts[name] == 0]
        raise DatasetError(
            f"class(es) with fewer than {MIN_CLIPS} clips: {', '.join(small)}"
            + (f" (no usable clips: {', '.join(empty)})" if empty else "")
            + (f"; their files: {_listing(files)}" if files else "")
            + "; record more, or leave them out with --classes"
        )


def _listing(items: list[str]) -> str:
    more = f" ... and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return "; ".join(items[:SHOWN]) + more
