"""Readers for the dataset layouts people already have: class folders, CSV manifests, Speech Commands.

Each returns a `Dataset` (clips.py) or raises a DatasetError naming the file, folder or manifest line.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from spoken_digits.data.clips import FILLER, FILLER_FOLDERS, SPLIT_ALIASES, Clip, Dataset, build, own_split
from spoken_digits.errors import DatasetError
from spoken_digits.frontend.audio import AUDIO_SUFFIXES

PATH_COLUMNS = ("path", "file_name", "filename", "file")  # file_name: Hugging Face audiofolder's metadata.csv
LABEL_COLUMNS = ("label", "class", "word")
SPEAKER_COLUMNS = ("speaker", "speaker_id", "client_id")
SC_LISTS = {"validation_list.txt": "validation", "testing_list.txt": "test"}
SC_NOISE = "_background_noise_"
SC_SPEAKER = re.compile(r"^(?P<speaker>[0-9a-f]+)_nohash_")  # Speech Commands: {speaker hash}_nohash_{n}.wav


def audio_files(folder: Path) -> list[Path]:
    """The audio files directly in `folder` (by suffix), hidden files left out."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and is_audio(p))


def is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


def speaker_of(path: Path, pattern: re.Pattern[str] | None) -> str:
    """The speaker `pattern` finds in the file name (group `speaker`, else group 1, else the match); "" if none."""
    if pattern is None:
        return ""
    match = pattern.search(path.name)
    if match is None:
        raise DatasetError(f"{path}: --speaker-pattern {pattern.pattern!r} finds no speaker in this file name")
    if "speaker" in pattern.groupindex:
        return match["speaker"]
    return match[1] if pattern.groups else match[0]


def read_folders(root: Path, pattern: re.Pattern[str] | None = None) -> Dataset:
    """root/<class>/<clip>, or root/<split>/<class>/<clip> with split folders train, validation, test."""
    folders = _subdirs(root)
    split_dirs = [d for d in folders if d.name.lower() in SPLIT_ALIASES]
    if split_dirs and len(split_dirs) < len(folders):
        others = [d.name for d in folders if d not in split_dirs]
        raise DatasetError(
            f"{root}: split folders ({', '.join(d.name for d in split_dirs)}) beside other folders "
            f"({', '.join(others)}); put every class inside the split folders, or rename a class called like a split"
        )
    levels = [(d, SPLIT_ALIASES[d.name.lower()]) for d in split_dirs] if split_dirs else [(root, "")]
    clips = []
    left_out: list[Path] = []
    for base, split in levels:
        left_out += [d for d in _underscored(base) if d.name not in FILLER_FOLDERS]
        for folder in _subdirs(base) + _fillers(base):
            files = audio_files(folder)
            if not files:
                raise DatasetError(f"{folder}: empty class folder (no audio files); remove it or add recordings")
            clips += [Clip(f, class_name(folder.name), speaker_of(f, pattern), split) for f in files]
    if not clips:
        raise DatasetError(f"{root}: no class folders with audio files (expected {root}/<class>/<clip>.wav)")
    return build(clips, "folders", root, notes=_left_out_note(left_out))


def _subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith((".", "_")))


def _underscored(folder: Path, *, but: str = "") -> list[Path]:
    """Folders named _like_this_: the filler folders (FILLER_FOLDERS) and others, which are left out."""
    return sorted(d for d in folder.iterdir() if d.is_dir() and d.name.startswith("_") and d.name != but)


def _fillers(folder: Path) -> list[Path]:
    """The folders of `folder` whose clips are the filler class (speech or sound that is none of the words)."""
    return [d for d in _underscored(folder) if d.name in FILLER_FOLDERS]


def class_name(label: str) -> str:
    """A folder's or manifest's label as a class: _unknown_ and _background_ are both the filler class."""
    return FILLER if label in FILLER_FOLDERS else label


def _left_out_note(folders: list[Path]) -> list[str]:
    if not folders:
        return []
    return [
        f"left out {len(folders)} folder(s) whose names start with _ ({', '.join(str(f) for f in folders)}): "
        f"such folders are not classes ({' and '.join(FILLER_FOLDERS)} are the filler class: speech that is "
        "none of the words); rename one without the _ to train on it"
    ]


def read_manifest(manifest: Path, pattern: re.Pattern[str] | None = None) -> Dataset:
    """A CSV with a header: path (or file_name), label[, speaker][, split]; paths relative to its folder."""
    root = Path(os.path.abspath(manifest.parent))
    delimiter = "\t" if manifest.suffix.lower() == ".tsv" else ","
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter)
            rows = [(reader.line_num, row) for row in reader]  # the line a row ends on, as an editor counts
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{manifest}: cannot be read as a CSV manifest ({exc})") from None
    header = [h.strip().lower() for h in (rows[0][1].keys() if rows else [])]
    path_col, label_col = _column(header, PATH_COLUMNS), _column(header, LABEL_COLUMNS)
    if path_col is None or label_col is None:
        raise DatasetError(
            f"{manifest}: the header needs a path column ({' or '.join(PATH_COLUMNS)}) and a label column "
            f"({' or '.join(LABEL_COLUMNS)}); it has: {', '.join(header) or 'no rows'}"
        )
    speaker_col, split_col = _column(header, SPEAKER_COLUMNS), _column(header, ("split",))
    if speaker_col and pattern is not None:
        raise DatasetError(
            f"{manifest}: --speaker-pattern {pattern.pattern!r} given, but the manifest has a speaker column "
            f"({speaker_col}); the column names the speakers: drop --speaker-pattern (or the column)"
        )
    clips: list[Clip] = []
    blank = ""  # the first line with a blank speaker cell
    seen: dict[Path, int] = {}
    for line, raw in rows:
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
        where = f"{manifest}, line {line}"
        if not row[path_col]:
            raise DatasetError(f"{where}: the {path_col} column is blank")
        if not row[label_col]:
            raise DatasetError(f"{where}: the {label_col} column is blank ({row[path_col]})")
        path = Path(os.path.normpath(root / row[path_col]))  # lexical: a link inside may point anywhere
        if not path.is_relative_to(root):
            raise DatasetError(f"{where}: {row[path_col]} is outside the dataset folder {root}")
        if not path.is_file():
            raise DatasetError(f"{where}: {row[path_col]} does not exist")
        if path in seen:
            raise DatasetError(f"{where}: {row[path_col]} is listed twice (also line {seen[path]})")
        seen[path] = line
        speaker = row[speaker_col] if speaker_col else speaker_of(path, pattern)
        if speaker_col and not speaker and not blank:
            blank = f"{where} has a blank {speaker_col} cell ({row[path_col]}), so not every clip's speaker is known"
        split = own_split(row[split_col], where) if split_col and row[split_col] else ""
        clips.append(Clip(path, class_name(row[label_col]), speaker, split))
    if not clips:
        raise DatasetError(f"{manifest}: no rows")
    return build(clips, "manifest", root, unknown_speaker=blank)


def _column(header: list[str], names: tuple[str, ...]) -> str | None:
    return next((name for name in names if name in header), None)


def read_speech_commands(root: Path) -> Dataset:
    """Google Speech Commands: a folder per word, its list files give the split, speakers from file names."""
    lists: dict[str, str] = {}
    for name, split in SC_LISTS.items():
        if (root / name).is_file():
            for entry in (root / name).read_text().split():
                lists[entry] = split
    clips = []
    for folder in _subdirs(root) + _fillers(root):
        files = audio_files(folder)
        if not files:
            raise DatasetError(f"{folder}: empty word folder (no audio files)")
        for f in files:
            match = SC_SPEAKER.match(f.name)
            split = lists.get(f"{folder.name}/{f.name}", "train")
            clips.append(Clip(f, class_name(folder.name), match["speaker"] if match else "", split))
    if not clips:
        raise DatasetError(f"{root}: no word folders with audio files")
    noise = audio_files(root / SC_NOISE) if (root / SC_NOISE).is_dir() else []
    notes = _left_out_note([d for d in _underscored(root, but=SC_NOISE) if d.name not in FILLER_FOLDERS])
    return build(clips, "speech-commands", root, noise=noise, notes=notes)


def is_speech_commands(root: Path) -> bool:
    return any((root / name).is_file() for name in SC_LISTS) or (root / SC_NOISE).is_dir()
