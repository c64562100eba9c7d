"""The front end's words on disk: extract every clip once, in parallel, and read batches back from one file.

`prepare(paths, cfg)` stores what `audio.load_all(paths, replace(cfg, duration=None))` returns (the
natural-length words) as float32 samples in `waves.f32`, keyed by a hash of everything that shapes them
(settings, detector, front-end code, each file's path, size and mtime), so a second run only stats
the files. `ClipStore.read` serves batches with positioned reads: no waveform is held in memory, and
page-cache reads do not count towards the process's resident memory as mapped pages would.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr
import torch
from tqdm.auto import tqdm

from spoken_digits.config import AudioConfig
from spoken_digits.data import fsdd
from spoken_digits.errors import AudioError, DatasetError, ParameterError
from spoken_digits.frontend import audio, endpoint

FORMAT = 1  # bump when the folder's layout or the meaning of its contents changes
CHUNK = 512  # most files per worker task: big enough to fill the detector's batches, small for a steady bar
PARALLEL_FROM = 1000  # files; fewer are extracted in this process (a spawned worker takes seconds to start)
META, WAVES, LENGTHS = "meta.json", "waves.f32", "lengths.npy"


@dataclass(frozen=True)
class _Chunk:
    """One worker task: files `paths` (indices from `start`), their samples to go to `part`."""

    start: int
    paths: list[str]
    cfg: AudioConfig
    part: str


@dataclass(frozen=True)
class _Done:
    """A finished task: samples per file (0 where bad), blake2b of each file ('' if unreadable), errors."""

    lengths: list[int]
    digests: list[str]
    errors: dict[int, str]


class ClipStore:
    """An opened cache folder: clip lengths, file digests, bad clips, and the samples in `waves.f32`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        meta = json.loads((self.path / META).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise DatasetError(f"{self.path}: clip cache format {meta.get('format')!r}, expected {FORMAT}")
        self.meta = meta
        self.lengths: np.ndarray = np.load(self.path / LENGTHS)  # (N,) int64 samples per clip
        self.digests: list[str] = meta["digests"]
        self.bad: dict[int, str] = {int(i): message for i, message in meta["bad"].items()}
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)  # (N + 1,) in samples
        self.nbytes = int(self.offsets[-1]) * 4
        if (self.path / WAVES).stat().st_size != self.nbytes:
            raise DatasetError(f"{self.path / WAVES}: damaged clip cache (expected {self.nbytes} bytes)")

    def __len__(self) -> int:
        return len(self.lengths)

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
        with open(self.path / WAVES, "rb", buffering=0) as f:
            for i, clip in enumerate(rows):
                n = int(self.lengths[clip]) * 4
                if n and os.preadv(f.fileno(), [memoryview(buffer[i]).cast("B")[:n]], int(self.offsets[clip]) * 4) != n:
                    raise DatasetError(f"{self.path / WAVES}: short read at clip {clip} (file truncated?)")
        return out, lengths

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every clip at once, as `audio.batch` would stack them: (N, longest) float32 and lengths (N,)."""
        if not len(self):
            raise AudioError("no audio to batch")
        return self.read(np.arange(len(self)))


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cache_root() -> Path:
    """The package's cache folder (honours $SPOKEN_DIGITS_CACHE); clip caches go to its clips/."""
    return fsdd.cache_dir()


def cache_key(paths: Sequence[Path], cfg: AudioConfig) -> str:
    """Hash of what shapes the stored samples: settings, detector, front-end code, each file's path/size/mtime."""
    key = hashlib.sha256()
    code = b"".join(Path(m.__file__ or "").read_bytes() for m in (audio, endpoint))
    detector = endpoint.detector_model()
    head = {
        "format": FORMAT,
        "audio": [cfg.sr, cfg.trim_db, cfg.vad, cfg.max_duration],
        "detector": hashlib.blake2b(detector, digest_size=16).hexdigest() if cfg.vad else None,
        "code": hashlib.blake2b(code, digest_size=16).hexdigest(),
        "libraries": [soxr.__version__, sf.__libsndfile_version__, metadata.version("onnxruntime")],
    }
    key.update(json.dumps(head).encode())
    for path in paths:
        absolute = os.path.abspath(path)
        try:
            info = os.stat(absolute)
            size, mtime = info.st_size, info.st_mtime_ns
        except OSError:  # missing: stored as a bad clip, and found again when it appears
            size, mtime = -1, -1
        key.update(f"\n{absolute}\0{size}\0{mtime}".encode())
    return key.hexdigest()[:24]


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

    `workers` processes (None: the usable cores; 1: this process) each extract contiguous chunks. A bad
    file raises its AudioError (the first in path order) and nothing is kept, unless `skip_bad`: then it
    is stored with length 0 and its message in `store.bad`.
    """
    workers = usable_cores() if workers is None else workers
    if workers < 1:
        raise ParameterError(f"workers must be >= 1 (or None: every usable core), got {workers}")
    cfg = replace(cfg, duration=None)
    folder = (cache_root() / "clips" if root is None else Path(root)) / cache_key(paths, cfg)
    if (folder / META).exists():
        return ClipStore(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _sweep(folder.parent)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".partial-{os.getpid()}-"))
    try:
        _build(staging, [str(p) for p in paths], cfg, workers, skip_bad, progress)
        if folder.exists() and not (folder / META).exists():
            shutil.rmtree(folder)  # not ours to have made: complete folders always hold META
        try:
            os.replace(staging, folder)
        except OSError:
            if not (folder / META).exists():
                raise
            shutil.rmtree(staging)  # another process finished the same cache first: use theirs
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ClipStore(folder)


def _build(staging: Path, paths: list[str], cfg: AudioConfig, workers: int, skip_bad: bool, bar: bool) -> None:
    """Extract `paths` into `staging`: parts appended in order to WAVES, then LENGTHS, then META last."""
    size = min(CHUNK, max(64, math.ceil(len(paths) / (4 * workers))))
    jobs = [
        _Chunk(start, paths[start : start + size], cfg, str(staging / f"part-{start:09d}.f32"))
        for start in range(0, len(paths), size)
    ]
    with (
        open(staging / WAVES, "wb") as out,
        tqdm(total=len(paths), unit="clip", desc="front end", disable=None if bar else True) as progress,
    ):
        if workers == 1 or len(jobs) <= 1 or len(paths) < PARALLEL_FROM:
            done = _collect((_extract_chunk(job) for job in jobs), jobs, out, progress, skip_bad)
        else:
            context = multiprocessing.get_context("spawn")  # torch and onnxruntime are loaded: no fork
            with context.Pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
                done = _collect(pool.imap(_extract_chunk, jobs), jobs, out, progress, skip_bad)
    np.save(staging / LENGTHS, np.asarray(done.lengths, dtype=np.int64))
    settings = {"sr": cfg.sr, "trim_db": cfg.trim_db, "vad": cfg.vad, "max_duration": cfg.max_duration}
    meta = {"format": FORMAT, "audio": settings, "paths": paths, "digests": done.digests, "bad": done.errors}
    (staging / META).write_text(json.dumps(meta), encoding="utf-8")


def _collect(results: Iterable[_Done], jobs: list[_Chunk], out: BinaryIO, progress: tqdm, skip_bad: bool) -> _Done:
    """Append each finished chunk's part (in order) to `out`; raise the first bad file unless `skip_bad`."""
    lengths, digests, bad = [], [], {}
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


def _sweep(parent: Path) -> None:
    """Remove staging folders whose builder process is gone (killed before it could clean up)."""
    for stale in parent.glob(".partial-*"):
        pid = stale.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        pass  # exists, but another user's; or not a pid we could check
    return True
