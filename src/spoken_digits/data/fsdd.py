"""The Free Spoken Digit Dataset: locate a copy, download and verify one, index its clips.

FSDD is found, in order: an explicit path, the `FSDD_ROOT` environment variable, the user cache.
When none holds it, `download` fetches the upstream v1.0.10 recordings into the cache, checks every
file against the sha256 manifest shipped in this package and only then moves them into place, so a
partial or corrupt download is never used. Nothing here downloads unless asked (`download=True`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from spoken_digits.data.clips import Clip as Clip_
from spoken_digits.data.clips import Dataset
from spoken_digits.errors import DatasetError

VERSION = "v1.0.10"
URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/{VERSION}.tar.gz"
CLASSES = tuple(str(d) for d in range(10))
TEST_TAKES = range(5)  # FSDD's README: takes 0-4 of every speaker and digit are the test set
SENTINEL = ".complete"  # written last: a cache folder without it is an unfinished download
_NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav$")


@dataclass(frozen=True)
class Clip:
    """One FSDD recording."""

    path: Path
    digit: int
    speaker: str
    take: int


def cache_dir() -> Path:
    """Where downloads go: $SPOKEN_DIGITS_CACHE, else $XDG_CACHE_HOME/spoken-digits, else ~/.cache."""
    if env := os.environ.get("SPOKEN_DIGITS_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spoken-digits"


def manifest() -> dict[str, str]:
    """The shipped sha256 of every v1.0.10 recording, keyed by file name."""
    text = resources.files("spoken_digits").joinpath("data/fsdd-v1.0.10.sha256").read_text()
    return {Path(name).name: digest for digest, name in (line.split() for line in text.splitlines())}


def recordings_dir(root: Path) -> Path:
    """Accept either the dataset folder (holding recordings/) or the recordings folder itself."""
    return root / "recordings" if (root / "recordings").is_dir() else root


def locate(root: str | os.PathLike[str] | None = None, *, download: bool = False) -> Path:
    """The folder holding FSDD's wav files: `root`, else $FSDD_ROOT, else the cache (downloading if asked)."""
    for given, origin in ((root, "the given path"), (os.environ.get("FSDD_ROOT"), "$FSDD_ROOT")):
        if given:
            folder = recordings_dir(Path(given))
            if not any(folder.glob("*.wav")):
                raise DatasetError(f"{given} ({origin}): no FSDD wav files there or in its recordings/")
            return folder
    cached = cache_dir() / f"fsdd-{VERSION}"
    if (cached / SENTINEL).exists():
        return cached / "recordings"
    if download:
        return download_to(cached) / "recordings"
    raise DatasetError(f"FSDD not found: pass --data DIR, set FSDD_ROOT, or allow the download to {cached}")


def download_to(target: Path, *, url: str = URL, expected: dict[str, str] | None = None) -> Path:
    """Download FSDD recordings into `target`, verified file by file; returns `target`.

    Work happens in a temporary sibling folder that is renamed into place only after every file
    matched its checksum, so an interrupted or corrupt download never looks complete.
    """
    expected = manifest() if expected is None else expected
    if (target / SENTINEL).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fsdd-download-") as tmp:
        archive = Path(tmp) / "fsdd.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, archive.open("wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as exc:
            raise DatasetError(f"downloading FSDD from {url} failed: {exc}") from None
        staged = Path(tmp) / "fsdd" / "recordings"
        staged.mkdir(parents=True)
        _extract_recordings(archive, staged, set(expected))
        _verify(staged, expected)
        (staged.parent / SENTINEL).write_text(f"{VERSION}\n")
        if target.exists():  # a stale, unfinished attempt
            shutil.rmtree(target)
        os.replace(staged.parent, target)
    return target


def _extract_recordings(archive: Path, dest: Path, names: set[str]) -> None:
    """Copy the archive's recordings/NAME.wav files whose NAME is in `names` (only files we can verify)."""
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if member.isfile() and len(parts) >= 2 and parts[-2] == "recordings" and parts[-1] in names:
                    source = tar.extractfile(member)
                    if source is not None:
                        (dest / parts[-1]).write_bytes(source.read())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(f"FSDD archive {archive.name} is damaged: {exc}") from None


def _verify(folder: Path, expected: dict[str, str]) -> None:
    missing = sorted(set(expected) - {p.name for p in folder.glob("*.wav")})
    if missing:
        raise DatasetError(f"FSDD download is incomplete: {len(missing)} files missing, e.g. {missing[0]}")
    for name, digest in expected.items():
        if hashlib.sha256((folder / name).read_bytes()).hexdigest() != digest:
            raise DatasetError(f"FSDD download is corrupt: {name} does not match its sha256")


def is_fsdd_name(name: str) -> bool:
    return _NAME.match(name) is not None


def index(folder: Path) -> list[Clip]:
    """Every `{digit}_{speaker}_{take}.wav` in `folder`, sorted by name; other names are an error."""
    clips = []
    for path in sorted(folder.glob("*.wav")):
        match = _NAME.match(path.name)
        if match is None:
            raise DatasetError(f"{path}: not an FSDD file name ({{digit}}_{{speaker}}_{{take}}.wav)")
        clips.append(Clip(path, int(match["digit"]), match["speaker"], int(match["take"])))
    if not clips:
        raise DatasetError(f"{folder}: no wav files")
    return clips


def dataset(folder: Path) -> Dataset:
    """FSDD as a generic Dataset (index() already sorts by file name)."""
    return Dataset(as_clips(index(folder)), CLASSES, "fsdd", folder)


def as_clips(clips: Sequence[Clip]) -> list[Clip_]:
    """FSDD clips as generic ones: label = the digit, own split = takes 0-4 test (FSDD's README), the rest train."""
    return [Clip_(c.path, str(c.digit), c.speaker, "test" if c.take in TEST_TAKES else "train") for c in clips]
