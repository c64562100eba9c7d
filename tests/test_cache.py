"""The on-disk clip cache: bit-identical to load_all, reused without reading audio, keyed by what made it,
and never left half-built (bad files, interrupts, two builders at once)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from spoken_digits.config import AudioConfig
from spoken_digits.data import cache
from spoken_digits.errors import AudioError, ParameterError
from spoken_digits.frontend import audio

VAD = AudioConfig(duration=None, trim_db=None, vad=True)  # the scratch preset's: the speech detector, 8 kHz
TRIM = AudioConfig()  # the clean preset's: silence trimmed, 0.5 s clips


@pytest.fixture(autouse=True)
def parallel_even_when_small(monkeypatch: pytest.MonkeyPatch) -> None:
    """workers=2 here means two processes, however few the test's files (prepare keeps small sets in-process)."""
    monkeypatch.setattr(cache, "PARALLEL_FROM", 0)


@pytest.fixture
def wavs(synthetic_fsdd: Path, tmp_path: Path) -> list[Path]:
    """48 synthetic clips (all digits, 3 voices) copied here, so a test may touch or break them."""
    folder = tmp_path / "wavs"
    folder.mkdir()
    chosen = sorted((synthetic_fsdd / "recordings").glob("*.wav"))[::5]
    return [Path(shutil.copy(p, folder / p.name)) for p in chosen]


def expected(paths: list[Path], cfg: AudioConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """What the cache must hold: load_all's natural-length words, stacked by audio.batch."""
    waves, lengths = audio.batch(audio.load_all(paths, dataclasses.replace(cfg, duration=None)))
    return torch.from_numpy(waves), torch.from_numpy(lengths)


def assert_matches(store: cache.ClipStore, paths: list[Path], cfg: AudioConfig) -> None:
    waves, lengths = expected(paths, cfg)
    got, got_lengths = store.load()
    assert got.dtype == torch.float32 and got_lengths.dtype == torch.int64
    assert torch.equal(got_lengths, lengths)
    assert torch.equal(got, waves)  # bit-identical, padding included
    assert store.lengths.tolist() == lengths.tolist() and store.bad == {}
    assert store.nbytes == 4 * int(lengths.sum()) == (store.path / "waves.f32").stat().st_size
    assert store.digests == [hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest() for p in paths]


@pytest.mark.parametrize("cfg", [VAD, TRIM], ids=["vad", "trim"])
@pytest.mark.parametrize("workers", [1, 2])
def test_store_is_load_all(
    wavs: list[Path], cfg: AudioConfig, workers: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "CHUNK", 16)  # several chunks: detector batches and parts differ from load_all's
    store = cache.prepare(wavs, cfg, workers=workers, root=tmp_path / "cache", progress=False)
    assert len(store) == len(wavs) and store.path.parent == tmp_path / "cache"
    assert_matches(store, wavs, cfg)
    assert sorted(os.listdir(store.path)) == ["lengths.npy", "meta.json", "waves.f32"]  # parts merged and gone


@pytest.mark.fsdd
@pytest.mark.parametrize("cfg", [VAD, TRIM], ids=["vad", "trim"])
@pytest.mark.parametrize("workers", [1, 2])
def test_store_is_load_all_on_fsdd(
    fsdd_root: Path, cfg: AudioConfig, workers: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = sorted((fsdd_root / "recordings").glob("*.wav"))[::25]  # 120 clips, every speaker and digit
    monkeypatch.setattr(cache, "CHUNK", 32)
    store = cache.prepare(paths, cfg, workers=workers, root=tmp_path, progress=False)
    assert_matches(store, paths, cfg)


def test_second_prepare_reads_no_audio(wavs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cache.prepare(wavs, VAD, workers=1, root=tmp_path / "cache", progress=False)
    monkeypatch.setattr(audio, "read_audio", lambda *a, **k: pytest.fail("read audio for a cached store"))
    again = cache.prepare(wavs, dataclasses.replace(VAD, duration=0.8), workers=2, root=tmp_path / "cache")
    assert again.path == first.path  # the length rule is applied later: not part of the key
    assert torch.equal(again.load()[0], first.load()[0])
    assert os.listdir(tmp_path / "cache") == [first.path.name]


def test_key_follows_files_and_settings(wavs: list[Path], tmp_path: Path) -> None:
    root = tmp_path / "cache"
    first = cache.prepare(wavs, TRIM, workers=1, root=root, progress=False).path
    assert cache.prepare(wavs, dataclasses.replace(TRIM, pad="start"), root=root).path == first
    info = wavs[3].stat()
    os.utime(wavs[3], ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))  # touched: contents may differ
    touched = cache.prepare(wavs, TRIM, workers=1, root=root, progress=False).path
    resampled = cache.prepare(wavs, dataclasses.replace(TRIM, sr=16000), workers=1, root=root, progress=False)
    trimmed = cache.prepare(wavs, dataclasses.replace(TRIM, trim_db=30.0), workers=1, root=root, progress=False).path
    reordered = cache.prepare(wavs[::-1], TRIM, workers=1, root=root, progress=False).path
    assert len({first, touched, resampled.path, trimmed, reordered}) == 5
    # The first store can never be used again (a file changed) and the touched one holds all its rows: gone.
    assert sorted(os.listdir(root)) == sorted(p.name for p in (touched, resampled.path, trimmed, reordered))
    assert resampled.lengths.tolist() == [
        len(w) for w in audio.load_all(wavs, dataclasses.replace(TRIM, sr=16000, duration=None))
    ]


def test_default_root_honours_cache_variable(wavs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOKEN_DIGITS_CACHE", str(tmp_path / "home"))
    store = cache.prepare(wavs[:4], TRIM, workers=1, progress=False)
    assert store.path.parent == tmp_path / "home" / "clips" and len(store) == 4


def break_files(wavs: list[Path]) -> tuple[int, ...]:
    """Make clip 5 empty, 9 a corrupt wav, 20 noise without speech and 40 missing; returns their indices."""
    wavs[5].write_bytes(b"")
    wavs[9].write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)))
    noise = 0.05 * np.random.default_rng(0).standard_normal(8000)
    sf.write(wavs[20], noise, 8000, subtype="PCM_16")  # readable, but the detector hears no voice
    wavs[40].unlink()
    return 5, 9, 20, 40


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_file_raises_and_leaves_nothing(
    wavs: list[Path], workers: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "CHUNK", 16)  # chunks 0-15, 16-31, 32-47: clips 5 and 9 share one
    break_files(wavs)
    root = tmp_path / "cache"
    with pytest.raises(AudioError, match=rf"^{re.escape(str(wavs[5]))}: file is empty \(0 bytes\)$"):
        cache.prepare(wavs, VAD, workers=workers, root=root, progress=False)
    assert os.listdir(root) == []  # no store, no staging folder
    backwards = wavs[::-1]  # the missing file (now 7th) comes first, in the first chunk
    with pytest.raises(AudioError, match=rf"^{re.escape(str(wavs[40]))}: no such file$"):
        cache.prepare(backwards, VAD, workers=workers, root=root, progress=False)
    with pytest.raises(AudioError, match=rf"^{re.escape(str(wavs[20]))}: no speech found"):
        cache.prepare(wavs[10:40], VAD, workers=workers, root=root, progress=False)
    assert os.listdir(root) == []


def test_skip_bad_keeps_the_rest(wavs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "CHUNK", 16)
    bad = break_files(wavs)
    store = cache.prepare(wavs, VAD, workers=2, skip_bad=True, root=tmp_path / "cache", progress=False)
    assert sorted(store.bad) == list(bad) and len(store) == len(wavs)
    assert store.bad[5] == f"{wavs[5]}: file is empty (0 bytes)"
    assert store.bad[9].startswith(f"{wavs[9]}: not a readable audio file")
    assert store.bad[20] == f"{wavs[20]}: no speech found (the speech detector heard no voice)"
    assert store.bad[40] == f"{wavs[40]}: no such file"
    assert store.digests[40] == "" and store.digests[5] == hashlib.blake2b(b"", digest_size=16).hexdigest()
    good = [i for i in range(len(wavs)) if i not in bad]
    waves, lengths = expected([wavs[i] for i in good], VAD)
    assert store.lengths[list(bad)].tolist() == [0, 0, 0, 0]
    got, got_lengths = store.read(good)
    assert torch.equal(got, waves) and torch.equal(got_lengths, lengths)
    everything, all_lengths = store.load()
    assert all_lengths[list(bad)].tolist() == [0, 0, 0, 0] and not everything[list(bad)].any()
    reopened = cache.prepare(wavs, VAD, workers=1, skip_bad=True, root=tmp_path / "cache", progress=False)
    assert reopened.path == store.path and reopened.bad == store.bad  # saved, and found again


def test_read_rows_of_load(wavs: list[Path], tmp_path: Path) -> None:
    store = cache.prepare(wavs, VAD, workers=1, root=tmp_path, progress=False)
    everything, lengths = store.load()
    pick = np.array([7, 0, 31, 7, 47])
    got, got_lengths = store.read(pick)
    assert torch.equal(got_lengths, lengths[pick])
    assert got.shape == (5, int(lengths[pick].max()))
    assert torch.equal(got, everything[pick, : got.shape[1]])
    one, one_length = store.read([12])
    assert torch.equal(one[0], everything[12, : int(lengths[12])]) and one_length.tolist() == [lengths[12]]
    with pytest.raises(IndexError, match=r"out of range 0\.\.47: 48"):
        store.read([3, 48])


def test_interrupted_build_leaves_nothing(wavs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "CHUNK", 16)
    calls, extract = [], cache._extract_chunk

    def interrupted(job: object) -> object:
        calls.append(job)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return extract(job)  # type: ignore[arg-type]

    monkeypatch.setattr(cache, "_extract_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.prepare(wavs, TRIM, workers=1, root=tmp_path / "cache", progress=False)
    assert len(calls) == 2 and os.listdir(tmp_path / "cache") == []
    monkeypatch.setattr(cache, "_extract_chunk", extract)
    assert_matches(cache.prepare(wavs, TRIM, workers=1, root=tmp_path / "cache", progress=False), wavs, TRIM)


def test_losing_a_race_uses_the_winner(wavs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cache"
    folder = root / cache.cache_key(wavs, dataclasses.replace(TRIM, duration=None))
    build = cache._build

    def beaten(staging: Path, *args: object) -> None:
        build(staging, *args)  # type: ignore[arg-type]
        shutil.copytree(staging, folder)  # another process renames its finished store in first
        (folder / "winner").touch()

    monkeypatch.setattr(cache, "_build", beaten)
    store = cache.prepare(wavs, TRIM, workers=1, root=root, progress=False)
    assert store.path == folder and (folder / "winner").exists()
    assert os.listdir(root) == [folder.name]  # the loser's staging folder is gone
    assert_matches(store, wavs, TRIM)


def test_workers_must_be_positive(wavs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"workers must be >= 1 \(or None: every usable core\), got 0"):
        cache.prepare(wavs, TRIM, workers=0, root=tmp_path)
    assert os.listdir(tmp_path) == ["wavs"]


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file the front end reads from now on (in this process: workers=1)."""
    calls: list[str] = []
    read = audio.read_audio

    def counted(path: object, *args: object, **kwargs: object) -> np.ndarray:
        calls.append(str(path))
        return read(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(audio, "read_audio", counted)
    return calls


def touch(path: Path) -> None:
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))


@pytest.mark.parametrize("cfg", [VAD, TRIM], ids=["vad", "trim"])
def test_touching_one_file_extracts_only_that_file_and_drops_the_old_store(
    wavs: list[Path], cfg: AudioConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache"
    reads = count_reads(monkeypatch)
    first = cache.prepare(wavs, cfg, workers=1, root=root, progress=False).path
    assert len(reads) == len(wavs)
    reads.clear()
    touch(wavs[17])
    store = cache.prepare(wavs, cfg, workers=1, root=root, progress=False)
    assert reads == [str(wavs[17])]  # one file read, 47 rows taken from the first store
    assert store.path != first and os.listdir(root) == [store.path.name]  # the old copy is gone
    assert_matches(store, wavs, cfg)


def test_added_removed_and_broken_files_reuse_every_unchanged_row(
    wavs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache"
    cache.prepare(wavs[:40], TRIM, workers=1, root=root, progress=False)
    reads = count_reads(monkeypatch)
    grown = cache.prepare(wavs, TRIM, workers=1, root=root, progress=False)  # 8 files added
    assert reads == [str(p) for p in wavs[40:]]
    assert_matches(grown, wavs, TRIM)
    assert len(os.listdir(root)) == 2  # the smaller store is still valid as it is: kept
    reads.clear()
    subset = cache.prepare(wavs[10:30:2], TRIM, workers=1, root=root, progress=False)
    assert reads == [] and len(os.listdir(root)) == 3
    assert_matches(subset, wavs[10:30:2], TRIM)
    wavs[5].write_bytes(b"")  # a file broken since: the strict run names it, the lenient one stores it bad
    with pytest.raises(AudioError, match=rf"^{re.escape(str(wavs[5]))}: file is empty"):
        cache.prepare(wavs, TRIM, workers=1, root=root, progress=False)
    reads.clear()
    lenient = cache.prepare(wavs, TRIM, workers=1, skip_bad=True, root=root, progress=False)
    assert reads == [str(wavs[5])] and lenient.bad == {5: f"{wavs[5]}: file is empty (0 bytes)"}
    with pytest.raises(AudioError, match=r"file is empty"):  # a bad row reused from a store stops a strict run
        cache.prepare(wavs[::-1], TRIM, workers=1, root=root, progress=False)
    assert reads == [str(wavs[5])]  # nothing more read: every row came from the stores


@pytest.mark.parametrize(
    "change",
    ["code", "detector", "soxr", "onnxruntime"],
)
def test_key_follows_code_detector_and_library_versions(
    wavs: list[Path], change: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spoken_digits.data import cachedir
    from spoken_digits.frontend import endpoint

    before = {cfg.vad: cache.cache_key(wavs, cfg) for cfg in (VAD, TRIM)}
    if change == "code":  # one byte more in the front end's source
        edited = tmp_path / "audio.py"
        edited.write_bytes(Path(audio.__file__).read_bytes() + b"\n")
        monkeypatch.setattr(audio, "__file__", str(edited))
    elif change == "detector":
        model = endpoint.detector_model()
        monkeypatch.setattr(endpoint, "detector_model", lambda: model + b"\0")
    elif change == "soxr":
        monkeypatch.setattr(cachedir.soxr, "__version__", "0.0.0")
    else:
        real = cachedir.metadata.version
        monkeypatch.setattr(cachedir.metadata, "version", lambda name: "0.0" if name == "onnxruntime" else real(name))
    after = {cfg.vad: cache.cache_key(wavs, cfg) for cfg in (VAD, TRIM)}
    assert after[True] != before[True]
    assert (after[False] == before[False]) is (change == "detector")  # the detector only counts where it runs


HOLDER = """
import fcntl, os, sys
path, mode = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(path), exist_ok=True)
handle = open(path, "a+b" if mode == "builder" else "rb")
fcntl.lockf(handle, fcntl.LOCK_EX if mode == "builder" else fcntl.LOCK_SH)
print("locked", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def locked_elsewhere(path: Path, mode: str) -> Iterator[None]:
    """Another process (a builder on another host, or a run reading a store) holding its lock on `path`."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield
    finally:
        holder.communicate("")


def test_only_builds_whose_lock_is_free_are_swept(wavs: list[Path], tmp_path: Path) -> None:
    """A process id says nothing about another host or container: the lock the builder holds does."""
    root = tmp_path / "cache"
    remote = root / ".partial-999999999-remote"  # a build in progress elsewhere; no such pid here
    dead, unlocked = root / ".partial-dead", root / ".partial-never-locked"
    with locked_elsewhere(remote / ".lock", "builder"):
        (remote / "part-000000000.f32").write_bytes(b"\0" * 64)
        with locked_elsewhere(dead / ".lock", "builder"):
            pass  # its builder was killed: the OS dropped the lock
        unlocked.mkdir()
        store = cache.prepare(wavs[:3], TRIM, workers=1, root=root, progress=False)
        assert remote.is_dir() and (remote / "part-000000000.f32").exists()
        assert not dead.exists() and not unlocked.exists() and store.path.exists()
    cache.prepare(wavs[3:6], TRIM, workers=1, root=root, progress=False)
    assert not remote.exists()  # its builder is gone now


def test_a_store_another_process_reads_is_never_removed(wavs: list[Path], tmp_path: Path) -> None:
    from spoken_digits.data import cachedir

    root = tmp_path / "cache"
    old = cache.prepare(wavs[:6], TRIM, workers=1, root=root, progress=False).path
    with locked_elsewhere(old / "waves.f32", "reader"):
        touch(wavs[0])
        new = cache.prepare(wavs[:6], TRIM, workers=1, root=root, progress=False)
        assert old.exists()  # superseded, but in use
        assert cachedir.prune(root) == ([], 1) and old.exists()
    removed, busy = cachedir.prune(root)
    assert [s.path for s in removed] == [old] and busy == 0
    assert os.listdir(root) == [new.path.name]
    assert cachedir.prune(root, keep=0) == ([], 1)  # ours: this process still reads it
    del new
    removed, _ = cachedir.prune(root, keep=0)
    assert len(removed) == 1 and os.listdir(root) == []


def test_cache_command_lists_and_prunes(
    wavs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from spoken_digits.apps.cli import main

    monkeypatch.setenv("SPOKEN_DIGITS_CACHE", str(tmp_path / "home"))
    a = cache.prepare(wavs[:4], TRIM, workers=1, progress=False).path
    b = cache.prepare(wavs[4:12], TRIM, workers=1, progress=False).path
    c = cache.prepare(wavs[12:14], VAD, workers=1, progress=False).path
    touch(wavs[1])  # a can never be used again; nothing has replaced it yet
    old = a.parent / "0123456789abcdef01234567"  # a store of the first format: one copy of everything
    old.mkdir()
    (old / "meta.json").write_text('{"format": 1}')
    (old / "waves.f32").write_bytes(b"\0" * 4000)
    assert main(["cache", "--list"]) == 0
    listed = capsys.readouterr().out
    assert f"{old.name}        0 clips        0.0 MB  used" in listed and "stale: format 1" in listed
    assert f"{a.name}        4 clips" in listed and f"stale: {wavs[1]} changed since" in listed
    assert f"{b.name}        8 clips" in listed and f"{c.name}        2 clips" in listed
    assert listed.count("current") == 2 and "4 store(s)" in listed
    assert main(["cache", "--prune"]) == 0
    pruned = capsys.readouterr().out
    assert f"removed {a.name}" in pruned and f"removed {old.name}" in pruned
    assert sorted(os.listdir(a.parent)) == sorted([b.name, c.name])
    os.utime(b / "meta.json", (1, 1))  # b unused for a long time
    assert main(["cache", "--prune", "--keep", "1"]) == 0
    assert f"removed {b.name}" in capsys.readouterr().out and os.listdir(a.parent) == [c.name]
    assert main(["cache", "--keep", "1"]) == 2
    assert "--keep and --max-size say what --prune keeps: add --prune" in capsys.readouterr().err
    assert main(["cache", "--prune", "--max-size", "lots"]) == 2
    assert "size 'lots': expected a number" in capsys.readouterr().err
    assert main(["cache", "--prune", "--max-size", "0"]) == 0 and os.listdir(a.parent) == []
