"""The on-disk clip cache: bit-identical to load_all, reused without reading audio, keyed by what made it,
and never left half-built (bad files, interrupts, two builders at once)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from spoken_digits.config import AudioConfig
from spoken_digits.data import cache
from spoken_digits.errors import AudioError, ParameterError
from spoken_digits.frontend import audio

VAD = AudioConfig(duration=None, trim_db=None, vad=True)  # the default preset's: the speech detector
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
    return audio.batch(audio.load_all(paths, dataclasses.replace(cfg, duration=None)))


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
    assert sorted(os.listdir(root)) == sorted(p.name for p in (first, touched, resampled.path, trimmed, reordered))
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


def test_stale_staging_of_dead_builders_is_swept(wavs: list[Path], tmp_path: Path) -> None:
    dead, alive = tmp_path / ".partial-999999999-x", tmp_path / f".partial-{os.getpid()}-y"
    dead.mkdir()
    alive.mkdir()
    store = cache.prepare(wavs[:3], TRIM, workers=1, root=tmp_path, progress=False)
    assert not dead.exists() and alive.exists() and store.path.exists()


def test_workers_must_be_positive(wavs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"workers must be >= 1 \(or None: every usable core\), got 0"):
        cache.prepare(wavs, TRIM, workers=0, root=tmp_path)
    assert os.listdir(tmp_path) == ["wavs"]
