"""The front end's words on disk: extract each clip once, in parallel, and read batches back from one file.

`prepare(paths, cfg)` stores what `audio.load_all(paths, replace(cfg, duration=None))` returns (the
natural-length words) as float32 samples in `waves.f32`. A store's name is two hashes: of what shapes
every clip (settings, detector, front-end code, libraries), then of each file's path, size and mtime,
so a second run only stats the files. When files change, a new store takes every unchanged file's row
from the stores before it (the same front end, matched per file) and extracts only the rest; a store
whose files all live on in the new one is then removed (data/cachedir.py: locks, listing, pruning).
`ClipStore.read` serves batches with positioned reads: no waveform is held in memory, and page-cache
reads do not count towards the process's resident memory as mapped pages would.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from tqdm.auto import tqdm

from spoken_digits.config import AudioConfig
from spoken_digits.data import cachedir, fsdd
from spoken_digits.data.cachedir import FORMAT, LENGTHS, LOCK, META, WAVES
from spoken_digits.errors import AudioError, DatasetError, ParameterError
from spoken_digits.frontend import audio

CHUNK = 512  # most files per worker task: big enough to fill the detector's batches, small for a steady bar
PARALLEL_FROM = 1000  # files; fewer are extracted in this process (a spawned worker takes seconds to start)
FRESH = "fresh.f32"  # a build's newly extracted samples, before they are merged with the reused ones

Record = tuple[str, int, int]  # a file's absolute path, size and mtime (ns)


@dataclass(frozen=True)
class _Chunk:
    """One worker task: files `paths` (positions from `start` among the files to extract), samples to `part`."""

    start: int
    paths: list[str]
    cfg: AudioConfig
    part: str


@dataclass(frozen=True)
class _Done:
    """Finished extraction: samples per file (0 where bad), blake2b of each file ('' if unreadable), errors."""

    lengths: list[int]
    digests: list[str]
    errors: dict[int, str]


class ClipStore:
    """An opened cache folder: clip lengths, file digests, bad clips, and the samples in `waves.f32`.

    The samples file stays open (and share-locked) while the store lives, so a pruner never removes it
    under a reader, on this machine or another.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        meta = json.loads((self.path / META).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise DatasetError(f"{self.path}: clip cache format {meta.get('format')!r}, expected {FORMAT}")
        self.meta = meta
        self.records: list[Record] = list(zip(meta["files"], meta["sizes"], meta["mtimes"], strict=True))
        self.lengths: np.ndarray = np.load(self.path / LENGTHS)  # (N,) int64 samples per clip
        self.digests: list[str] = meta["digests"]
        self.bad: dict[int, str] = {int(i): message for i, message in meta["bad"].items()}
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)  # (N + 1,) in samples
        self.nbytes = int(self.offsets[-1]) * 4
        self._file = open(self.path / WAVES, "rb", buffering=0)  # noqa: SIM115 (held for the store's life)
        if os.fstat(self._file.fileno()).st_size != self.nbytes:
            self._file.close()
            raise DatasetError(f"{self.path / WAVES}: damaged clip cache (expected {self.nbytes} bytes)")
        held = cachedir.hold(self.path, self._file, self)
        if held is None:
            self._file.close()
            raise FileNotFoundError(f"{self.path}: being removed")
        self._release = held

    def __len__(self) -> int:
        return len(self.lengths)

    def __reduce__(self) -> tuple[type[ClipStore], tuple[Path]]:
        return ClipStore, (self.path,)  # another process opens (and locks) the folder itself

    def read(self, index: Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips `index` as a zero-padded float32 (n, longest) tensor and their lengths (n,) int64.

        Each clip is read straight into its row with `os.preadv`: one file read per clip, no mapping.
        """
        rows = np.asarray(index, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"clip index out of range 0..{len(self) - 1}: {rows[(rows < 0) | (rows >= len(self))][0]}")
        lengths = torch.from_numpy(self.lengths[rows].copy())
        out = torch.zeros(len(rows), int(lengths.max()) if len(rows) else 0, dtype=torch.float32)
        buffer = out.numpy()
        fd = self._file.fileno()
        for i, clip in enumerate(rows):
            n = int(self.lengths[clip]) * 4
            if n and os.preadv(fd, [memoryview(buffer[i]).cast("B")[:n]], int(self.offsets[clip]) * 4) != n:
                raise DatasetError(f"{self.path / WAVES}: short read at clip {clip} (file truncated?)")
        return out, lengths

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every clip at once, as `audio.batch` would stack them: (N, longest) float32 and lengths (N,)."""
        if not len(self):
            raise AudioError("no audio to batch")
        return self.read(np.arange(len(self)))

    def close(self) -> None:
        """Close the samples file and drop the lock: the store may then be removed."""
        self._file.close()
        self._release()


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cache_root() -> Path:
    """The package's cache folder (honours $SPOKEN_DIGITS_CACHE); clip caches go to its clips/."""
    return fsdd.cache_dir()


def clips_folder(root: Path | None = None) -> Path:
    """Where the clip stores live: `root`, else the package cache's clips/."""
    return cache_root() / "clips" if root is None else Path(root)


def front_end_key(cfg: AudioConfig) -> str:
    """Hash of what shapes every stored clip: settings, detector, front-end code, libraries (`cfg.duration`
    is applied later, so it is not part of it)."""
    head = {
        "format": FORMAT,
        "audio": [cfg.sr, cfg.trim_db, cfg.vad, cfg.max_duration],
        **cachedir.versions(cfg.vad),
    }
    return hashlib.sha256(json.dumps(head).encode()).hexdigest()[:16]


def files_key(records: Sequence[Record]) -> str:
    """Hash of the files, in order: each one's absolute path, size and mtime."""
    key = hashlib.sha256()
    for path, size, mtime in records:
        key.update(f"\n{path}\0{size}\0{mtime}".encode())
    return key.hexdigest()[:16]


def cache_key(paths: Sequence[Path], cfg: AudioConfig) -> str:
    """The store's folder name for `paths` through `cfg`: front-end key, then files key."""
    return f"{front_end_key(cfg)}-{files_key([cachedir.file_record(p) for p in paths])}"


def prepare(
    paths: Sequence[Path],
    cfg: AudioConfig,
    *,
    workers: int | None = None,
    skip_bad: bool = False,
    progress: bool = True,
    root: Path | None = None,
) -> ClipStore:
    """The store of `paths` through the front end of `cfg` (its length rule ignored), built if not cached.

    `workers` processes (None: the usable cores; 1: this process) each extract contiguous chunks of the
    files no earlier store holds. A bad file raises its AudioError (the first in path order) and nothing
    is kept, unless `skip_bad`: then it is stored with length 0 and its message in `store.bad`.
    """
    workers = usable_cores() if workers is None else workers
    if workers < 1:
        raise ParameterError(f"workers must be >= 1 (or None: every usable core), got {workers}")
    cfg = replace(cfg, duration=None)
    parent = clips_folder(root)
    records = [cachedir.file_record(p) for p in paths]
    front = front_end_key(cfg)
    folder = parent / f"{front}-{files_key(records)}"
    if (found := _open(folder)) is not None:
        return found
    parent.mkdir(parents=True, exist_ok=True)
    cachedir.sweep(parent)
    donors = _donors(parent, front)
    try:
        with cachedir.building(parent) as staging:
            _build(staging, [str(p) for p in paths], records, cfg, donors, workers, skip_bad, progress)
            if folder.exists() and not (folder / META).exists():
                shutil.rmtree(folder)  # not ours to have made: complete folders always hold META
            try:
                os.replace(staging, folder)
            except OSError:
                if not (folder / META).exists():
                    raise
                shutil.rmtree(staging)  # another process finished the same cache first: use theirs
            else:
                (folder / LOCK).unlink(missing_ok=True)
    finally:
        for donor in donors:
            donor.close()
    _retire(donors, records)
    store = _open(folder)
    if store is None:
        raise DatasetError(f"{folder}: removed by another process as it was made; run again")
    return store


def _open(folder: Path) -> ClipStore | None:
    """The finished store in `folder` (marked used), or None if there is none (or it is being removed)."""
    if not (folder / META).exists():
        return None
    try:
        store = ClipStore(folder)
    except FileNotFoundError:
        return None
    cachedir.touch(folder)
    return store


def _donors(parent: Path, front: str) -> list[ClipStore]:
    """The finished stores of the same front end, most recently used first: their rows may be reused."""
    found = []
    for folder in parent.glob(f"{front}-*"):
        try:
            found.append(ClipStore(folder))
        except (OSError, ValueError, KeyError, DatasetError):
            continue  # unfinished, damaged or being removed: nothing to take from it
    return sorted(found, key=lambda s: -os.stat(s.path / META).st_mtime)


def _retire(donors: list[ClipStore], records: list[Record]) -> None:
    """Remove earlier stores that can never be used again (a file of theirs changed or went) once every row
    of theirs that is still valid lives on in the new store: the stores an edited dataset leaves behind."""
    now = {path: (path, size, mtime) for path, size, mtime in records}
    for donor in donors:
        changed = kept = False
        for record in donor.records:
            current = now.get(record[0]) or cachedir.file_record(record[0])
            changed |= current != record
            kept |= current == record and record[0] not in now  # still valid, and only there
        if changed and not kept:
            cachedir.remove(donor.path)


def _sources(records: list[Record], donors: list[ClipStore]) -> list[tuple[int, int] | None]:
    """For each file, (donor, row) of an earlier store holding it unchanged, or None (to extract)."""
    wanted: dict[Record, int] = {record: i for i, record in enumerate(records)}
    sources: list[tuple[int, int] | None] = [None] * len(records)
    for d, donor in enumerate(donors):
        for row, record in enumerate(donor.records):
            i = wanted.get(record)
            if i is not None and sources[i] is None:
                sources[i] = (d, row)
    for i, record in enumerate(records):  # a path listed twice: every copy from the first's source
        if sources[i] is None and wanted[record] != i:
            sources[i] = sources[wanted[record]]
    return sources


def _build(
    staging: Path,
    paths: list[str],
    records: list[Record],
    cfg: AudioConfig,
    donors: list[ClipStore],
    workers: int,
    skip_bad: bool,
    bar: bool,
) -> None:
    """Fill `staging`: the files no donor holds extracted, merged in order with the reused rows into WAVES,
    then LENGTHS, then META last."""
    sources = _sources(records, donors)
    known = {i: donors[s[0]].bad[s[1]] for i, s in enumerate(sources) if s is not None and s[1] in donors[s[0]].bad}
    missing = [i for i, s in enumerate(sources) if s is None]
    if known and not skip_bad:  # the first bad file decides: extract only the files before it
        missing = [i for i in missing if i < min(known)]
    fresh = _extract(staging, [paths[i] for i in missing], cfg, workers, skip_bad, bar)
    if known and not skip_bad:
        raise AudioError(known[min(known)])
    lengths, digests = [0] * len(paths), [""] * len(paths)
    bad = {missing[k]: message for k, message in fresh.errors.items()} | known
    for k, i in enumerate(missing):
        lengths[i], digests[i] = fresh.lengths[k], fresh.digests[k]
    for i, s in enumerate(sources):
        if s is not None:
            lengths[i], digests[i] = int(donors[s[0]].lengths[s[1]]), donors[s[0]].digests[s[1]]
    with open(staging / WAVES, "wb") as out, open(staging / FRESH, "rb") as new:
        for i, s in enumerate(sources):
            out.write(new.read(lengths[i] * 4) if s is None else _row_bytes(donors[s[0]], s[1]))
    os.unlink(staging / FRESH)
    np.save(staging / LENGTHS, np.asarray(lengths, dtype=np.int64))
    meta = {
        "format": FORMAT,
        "audio": {"sr": cfg.sr, "trim_db": cfg.trim_db, "vad": cfg.vad, "max_duration": cfg.max_duration},
        "versions": cachedir.versions(cfg.vad),
        "paths": paths,
        "files": [r[0] for r in records],
        "sizes": [r[1] for r in records],
        "mtimes": [r[2] for r in records],
        "digests": digests,
        "bad": dict(sorted(bad.items())),
    }
    (staging / META).write_text(json.dumps(meta), encoding="utf-8")


def _row_bytes(store: ClipStore, row: int) -> bytes:
    """The stored samples of one clip, as bytes."""
    n, offset = int(store.lengths[row]) * 4, int(store.offsets[row]) * 4
    data = os.pread(store._file.fileno(), n, offset)
    if len(data) != n:
        raise DatasetError(f"{store.path / WAVES}: short read at clip {row} (file truncated?)")
    return data


def _extract(staging: Path, paths: list[str], cfg: AudioConfig, workers: int, skip_bad: bool, bar: bool) -> _Done:
    """Run the front end over `paths` into staging/FRESH (samples in order); errors keyed by position."""
    size = min(CHUNK, max(64, math.ceil(len(paths) / (4 * workers))))
    jobs = [
        _Chunk(start, paths[start : start + size], cfg, str(staging / f"part-{start:09d}.f32"))
        for start in range(0, len(paths), size)
    ]
    with (
        open(staging / FRESH, "wb") as out,
        tqdm(total=len(paths), unit="clip", desc="front end", disable=None if bar else True) as progress,
    ):
        if workers == 1 or len(jobs) <= 1 or len(paths) < PARALLEL_FROM:
            return _collect((_extract_chunk(job) for job in jobs), jobs, out, progress, skip_bad)
        context = multiprocessing.get_context("spawn")  # torch and onnxruntime are loaded: no fork
        with context.Pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
            return _collect(pool.imap(_extract_chunk, jobs), jobs, out, progress, skip_bad)


def _collect(results: Iterable[_Done], jobs: list[_Chunk], out: BinaryIO, progress: Any, skip_bad: bool) -> _Done:
    """Append each finished chunk's part (in order) to `out`; raise the first bad file unless `skip_bad`."""
    lengths: list[int] = []
    digests: list[str] = []
    bad: dict[int, str] = {}
    for job, done in zip(jobs, results, strict=True):
        if done.errors and not skip_bad:
            raise AudioError(done.errors[min(done.errors)])
        with open(job.part, "rb") as part:
            shutil.copyfileobj(part, out, 1 << 20)
        os.unlink(job.part)
        lengths += done.lengths
        digests += done.digests
        bad.update(done.errors)
        progress.update(len(job.paths))
    return _Done(lengths, digests, bad)


def _init_worker() -> None:
    """One thread per worker process: the workers are the parallelism."""
    torch.set_num_threads(1)


def _extract_chunk(job: _Chunk) -> _Done:
    """Run the front end (as `audio.load_all`) over one chunk; write its samples to `job.part`."""
    waves, names, where = [], [], []
    digests, errors = [], {}
    for i, path in enumerate(job.paths):
        try:
            digests.append(hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest())
        except OSError:
            digests.append("")
        try:
            waves.append(audio.read_audio(path, job.cfg.sr, max_duration=job.cfg.max_duration))
        except AudioError as exc:
            errors[job.start + i] = str(exc)
            continue
        names.append(path)
        where.append(i)
    lengths = [0] * len(job.paths)
    with open(job.part, "wb") as part:
        for i, result in zip(where, audio.prepare_all(waves, job.cfg, names=names), strict=True):
            if isinstance(result, AudioError):
                errors[job.start + i] = str(result)
                continue
            samples = np.ascontiguousarray(result, dtype=np.float32)
            part.write(samples.tobytes())
            lengths[i] = len(samples)
    return _Done(lengths, digests, dict(sorted(errors.items())))
