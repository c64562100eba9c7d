"""The clip cache's folder, shared by processes, containers and machines: who may delete what, what is
there, and what can go (`spoken-digits cache --list / --prune`).

A builder holds a POSIX record lock (fcntl) on `.partial-*/.lock` while it builds; a reader holds a
shared lock on a store's `waves.f32` while it reads. Unlike a process id, such a lock is seen by every
process that shares the file system (other containers, other hosts over NFS) and is dropped by the OS
when its holder dies, however it dies. So a folder is removed only when its lock can be taken: never
another machine's build in progress, never a store another run is still reading.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import soundfile as sf
import soxr

from spoken_digits.errors import ParameterError
from spoken_digits.frontend import audio, endpoint

FORMAT = 2  # bump when a store's layout or the meaning of its contents changes
META, WAVES, LENGTHS, LOCK = "meta.json", "waves.f32", "lengths.npy", ".lock"
PARTIAL, TRASH = ".partial-", ".trash-"

# Folders this process builds or reads. POSIX locks never exclude their own process (and closing any
# descriptor of a file drops all of the process's locks on it), so our own are skipped by this count.
_ours: Counter[str] = Counter()


def versions(vad: bool) -> dict[str, Any]:
    """What besides the settings shapes the stored samples: the front end's code, the detector, the libraries."""
    code = b"".join(Path(m.__file__ or "").read_bytes() for m in (audio, endpoint))
    return {
        "code": hashlib.blake2b(code, digest_size=16).hexdigest(),
        "detector": hashlib.blake2b(endpoint.detector_model(), digest_size=16).hexdigest() if vad else None,
        "libraries": [soxr.__version__, sf.__libsndfile_version__, metadata.version("onnxruntime")],
    }


def _key(folder: Path) -> str:
    return os.path.abspath(folder)


def hold(folder: Path, handle: IO[bytes], owner: object) -> weakref.finalize | None:
    """Take a shared lock on an open store file until `owner` is gone or the returned finalizer is called;
    None if the store is being removed. A file system without locks (some read-only mounts) reads unlocked."""
    try:
        fcntl.lockf(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return None
    except OSError:
        pass
    key = _key(folder)
    _ours[key] += 1
    return weakref.finalize(owner, _release, key)


def _release(key: str) -> None:
    _ours[key] -= 1
    if _ours[key] <= 0:
        del _ours[key]


def _take(path: Path) -> IO[bytes] | None:
    """An exclusive lock on `path` (created if missing), or None while anyone else holds a lock on it."""
    try:
        handle = open(path, "a+b")  # noqa: SIM115 (returned open, closed by the caller)
    except OSError:
        return None
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


@contextmanager
def building(parent: Path) -> Iterator[Path]:
    """A fresh staging folder in `parent`, locked while the block runs (the block renames it into place or
    it is removed). The lock is taken before anything is built; a sweeper that removed the empty folder
    first (it could take the lock before we did) only makes us start again with another one."""
    while True:
        staging = Path(tempfile.mkdtemp(dir=parent, prefix=PARTIAL))
        key = _key(staging)
        _ours[key] += 1
        try:
            handle = open(staging / LOCK, "a+b")  # noqa: SIM115
        except FileNotFoundError:  # swept before we could lock it
            _release(key)
            continue
        fcntl.lockf(handle, fcntl.LOCK_EX)
        if os.fstat(handle.fileno()).st_nlink:  # still ours: no sweeper removed it meanwhile
            break
        handle.close()
        _release(key)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _release(key)
        handle.close()


def sweep(parent: Path) -> None:
    """Remove staging folders whose builder is gone (killed before it could clean up) and leftover trash."""
    for folder in parent.glob(PARTIAL + "*"):
        if _key(folder) in _ours or not folder.is_dir():
            continue
        handle = _take(folder / LOCK)
        if handle is not None:  # nobody builds here any more
            with handle:
                shutil.rmtree(folder, ignore_errors=True)
    for folder in parent.glob(TRASH + "*"):
        shutil.rmtree(folder, ignore_errors=True)


def remove(folder: Path) -> bool:
    """Delete a finished store unless some process reads it (ours included); True if it went."""
    if _key(folder) in _ours:
        return False
    try:
        handle = open(folder / WAVES, "r+b")  # noqa: SIM115
    except FileNotFoundError:
        handle = None  # damaged: nothing to read, nothing to wait for
    except OSError:
        return False
    try:
        if handle is not None:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        trash = folder.parent / f"{TRASH}{secrets.token_hex(6)}"
        os.replace(folder, trash)  # gone at once: nobody finds half a store
        shutil.rmtree(trash, ignore_errors=True)
        return True
    except OSError:
        return False
    finally:
        if handle is not None:
            handle.close()


def touch(folder: Path) -> None:
    """Mark a store as just used (its meta.json's mtime), for the least-recently-used order."""
    with contextlib.suppress(OSError):  # a read-only cache: its order does not matter
        os.utime(folder / META)


@dataclass(frozen=True)
class StoreInfo:
    """One finished store as `cache --list` shows it; `why_stale` is empty while a run could use it."""

    path: Path
    clips: int
    nbytes: int
    last_used: float
    audio: dict[str, Any]
    root: str
    why_stale: str


def stores(parent: Path, *, vad_versions: dict[bool, dict[str, Any]] | None = None) -> list[StoreInfo]:
    """The finished stores in `parent`, most recently used first, each checked against today's code and files."""
    current = vad_versions or {}
    found: list[StoreInfo] = []
    if not parent.is_dir():
        return found
    for folder in sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            found.append(_info(folder, current))
        except (OSError, ValueError, KeyError, TypeError):
            found.append(StoreInfo(folder, 0, _size(folder), 0.0, {}, "", "damaged or unfinished"))
    return sorted(found, key=lambda s: -s.last_used)


def _info(folder: Path, current: dict[bool, dict[str, Any]]) -> StoreInfo:
    """One store as listed: its size, when it was last used, its settings and whether it is stale."""
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    used, nbytes = (folder / META).stat().st_mtime, (folder / WAVES).stat().st_size
    if meta.get("format") != FORMAT:
        return StoreInfo(folder, 0, _size(folder), used, {}, "", f"format {meta.get('format')!r}")
    settings = meta["audio"]
    vad = bool(settings["vad"])
    if vad not in current:
        current[vad] = versions(vad)
    paths = meta["files"]
    root = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""
    return StoreInfo(folder, len(paths), nbytes, used, settings, root, _stale(meta, current[vad]))


def _stale(meta: dict[str, Any], now: dict[str, Any]) -> str:
    """Why a store can never be used again (another front end, files changed since), or ''."""
    for name in ("code", "detector", "libraries"):
        if meta["versions"][name] != now[name]:
            return f"built by another {'front-end code' if name == 'code' else name}"
    for path, size, mtime in zip(meta["files"], meta["sizes"], meta["mtimes"], strict=True):
        if file_record(path)[1:] != (size, mtime):
            return f"{path} changed since"
    return ""


def file_record(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    """(absolute path, size, mtime in ns) of a file; (path, -1, -1) when missing."""
    absolute = os.path.abspath(path)
    try:
        info = os.stat(absolute)
    except OSError:  # missing: stored as a bad clip, and found again when it appears
        return absolute, -1, -1
    return absolute, info.st_size, info.st_mtime_ns


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def prune(parent: Path, *, keep: int | None = None, max_bytes: int | None = None) -> tuple[list[StoreInfo], int]:
    """Remove stale stores (another front end, changed files, damaged), then all but the `keep` most recently
    used, then the least recently used until at most `max_bytes` remain; and dead builders' folders.
    Returns the stores removed and how many were kept because some process is reading them."""
    if not parent.is_dir():
        return [], 0
    sweep(parent)
    removed, busy, total, kept = [], 0, 0, 0
    for store in stores(parent):
        over = (keep is not None and kept >= keep) or (max_bytes is not None and total + store.nbytes > max_bytes)
        if not store.why_stale and not over:
            kept += 1
            total += store.nbytes
        elif remove(store.path):
            removed.append(store)
        else:
            busy += 1
    return removed, busy


def table(found: list[StoreInfo]) -> str:
    """`cache --list`: one line per store, most recently used first, and the total."""
    lines = []
    for s in found:
        settings = ", ".join(f"{k}={v}" for k, v in s.audio.items())
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.last_used)) if s.last_used else "-"
        state = f"stale: {s.why_stale}" if s.why_stale else "current"
        lines.append(f"{s.path.name}  {s.clips:>7} clips  {s.nbytes / 1e6:>9.1f} MB  used {used}  {state}")
        if s.root:
            lines.append(f"    {s.root}  ({settings})")
    lines.append(f"{len(found)} store(s), {sum(s.nbytes for s in found) / 1e6:.1f} MB")
    return "\n".join(lines)


def parse_size(text: str) -> int:
    """Bytes from a size such as 500M, 20G or 1.5T (powers of 1000, as `cache --list` prints them)."""
    units = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    number, unit = text.strip().upper().removesuffix("B"), ""
    if number and number[-1] in units:
        number, unit = number[:-1], number[-1]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ParameterError(f"size {text!r}: expected a number with an optional K, M, G or T, e.g. 20G")
    return int(value * units[unit])
