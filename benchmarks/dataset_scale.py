"""Dataset scale: the front end over 100,000 one-second clips into the on-disk cache, and training from it.

    python -m benchmarks.dataset_scale [--clips N] [--workers N] [--work DIR] [--fsdd DIR] [--out DIR]

The clips are FSDD recordings (up to 0.95 s long) placed at a random offset in one second of 8 kHz int16
audio, peak-normalised to -6 dBFS then at a random gain of -20 to 0 dB, over white noise at -60 dBFS, seeded
per clip, in a folder per digit (`<work>/synthetic-<N>-seed<S>-v<recipe>/<digit>/<name>.wav`; reused when
complete). One run measures, on the scratch preset's front end (the speech detector): extraction with 1
worker and with N workers (each into a fresh cache), a second `prepare` on the N-worker cache (reuse), and,
in a child process so that its peak memory is its own, `spoken-digits train` itself (scratch preset, one
epoch) on the dataset, reading the N-worker cache batch by batch. Writes scale.json to --out (default
docs/findings/scale).
"""

from __future__ import annotations

import argparse
import filecmp
import functools
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from benchmarks.common import Row
from benchmarks.common import clips as fsdd_clips
from spoken_digits.atomic import write_json
from spoken_digits.config import SCRATCH_AUDIO
from spoken_digits.data import cache
from spoken_digits.data.sources import open_dataset

SR = 8000
LONGEST = 0.95  # s: longer FSDD recordings (27 of 3,000) are not used, so every word fits in its second
PEAK_DBFS, NOISE_DBFS = -6.0, -60.0  # each word's peak before its gain; the white noise's RMS
RECIPE = 2  # in the dataset's folder name: bump when the clips' recipe changes, so no stale copy is reused
FILES_PER_TASK = 2000
TARGETS = {"workers_speedup": "close to the number of workers", "cache_speedup": ">= 20", "peak_rss_mb": "<= 2048"}


def make_dataset(sources: list[Path], clips: int, work: Path, seed: int, workers: int) -> Path:
    """The synthetic dataset's folder, written (in `workers` processes) unless a complete one is there."""
    target = work / f"synthetic-{clips}-seed{seed}-v{RECIPE}"
    if (target / ".complete").exists():
        return target
    work.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=work, prefix=f".partial-{target.name}-"))
    try:
        for digit in range(10):
            (staging / str(digit)).mkdir()
        tasks = [
            (start, min(start + FILES_PER_TASK, clips), staging, sources, seed)
            for start in range(0, clips, FILES_PER_TASK)
        ]
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_clips, tasks):
                pass
        (staging / ".complete").write_text(json.dumps({"clips": clips, "seed": seed, "sources": len(sources)}))
        if target.exists():  # an unfinished earlier attempt
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _write_clips(task: tuple[int, int, Path, list[Path], int]) -> None:
    """Write clips [start, stop): clip i says digit i % 10, drawn with its own seed (the same for any workers)."""
    start, stop, folder, sources, seed = task
    by_digit = [[p for p in sources if p.name.startswith(f"{d}_")] for d in range(10)]
    for i in range(start, stop):
        rng = np.random.default_rng([seed, i])
        source = by_digit[i % 10][rng.integers(len(by_digit[i % 10]))]
        word = _read(source)
        y = 10 ** (NOISE_DBFS / 20) * rng.standard_normal(SR)
        offset = int(rng.integers(SR - len(word) + 1))
        y[offset : offset + len(word)] += word * 10 ** ((PEAK_DBFS + rng.uniform(-20, 0)) / 20) / np.abs(word).max()
        sf.write(folder / str(i % 10) / f"{i:06d}_{source.stem}.wav", np.clip(y, -1, 1), SR, subtype="PCM_16")


@functools.cache
def _read(path: Path) -> np.ndarray:
    return sf.read(path, dtype="float64")[0]


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_prepare(paths: list[Path], root: Path, workers: int) -> tuple[float, cache.ClipStore]:
    started = time.perf_counter()
    store = cache.prepare(paths, SCRATCH_AUDIO, workers=workers, skip_bad=True, root=root)
    return time.perf_counter() - started, store


def train_once(dataset: Path, cache_home: Path, workers: int) -> dict[str, Any]:
    """`spoken-digits train --preset scratch` (one epoch) on the dataset, in this process: its time, score and
    peak memory. The front end's cache in `cache_home` is the one the benchmark built, so only training runs."""
    from spoken_digits.apps.cli import main as cli

    os.environ["SPOKEN_DIGITS_CACHE"] = str(cache_home)
    before = peak_rss_mb()
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        options = ["--preset", "scratch", "--epochs", "1", "--workers", str(workers), "--skip-bad", "--no-download"]
        code = cli(["train", "--data", str(dataset), "--out", out, *options])
        seconds = time.perf_counter() - started
        metrics = json.loads((Path(out) / "metrics.json").read_text()) if code == 0 else {}
    return {
        "exit": code,
        "seconds": seconds,
        "epochs": 1,
        "n_train": metrics.get("n_train"),
        "n_test": metrics.get("n_test"),
        "test_accuracy": metrics.get("test_accuracy"),
        "split_used": metrics.get("split_used"),
        "peak_rss_mb_before": before,
        "peak_rss_mb": peak_rss_mb(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from spoken_digits.device import machine

    sources = [c.path for c in fsdd_clips(args.fsdd) if sf.info(c.path).frames <= LONGEST * SR]
    started = time.perf_counter()
    dataset = make_dataset(sources, args.clips, args.work, args.seed, args.workers)
    generate_s = time.perf_counter() - started
    paths = [c.path for c in open_dataset(dataset).clips]  # in the order train reads them: the same cache key
    print(f"dataset: {len(paths)} clips in {dataset} ({generate_s:.0f} s)", flush=True)
    homes = {n: args.work / f"cache-{dataset.name}-{n}w" for n in (1, args.workers)}
    roots = {n: home / "clips" for n, home in homes.items()}  # where prepare puts stores under that home
    for home in homes.values():
        shutil.rmtree(home, ignore_errors=True)  # fresh: the extraction is what is measured
    t1, serial = timed_prepare(paths, roots[1], 1)
    print(f"1 worker: {t1:.1f} s ({1e3 * t1 / len(paths):.2f} ms per clip)", flush=True)
    t_n, parallel = timed_prepare(paths, roots[args.workers], args.workers)
    print(f"{args.workers} workers: {t_n:.1f} s", flush=True)
    t_reuse, reused = timed_prepare(paths, roots[args.workers], args.workers)
    print(f"reuse: {t_reuse:.3f} s", flush=True)
    identical = (
        serial.lengths.tolist() == parallel.lengths.tolist()
        and serial.bad == parallel.bad
        and filecmp.cmp(serial.path / cache.WAVES, parallel.path / cache.WAVES, shallow=False)
    )
    parent_rss, workers_rss = peak_rss_mb(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    command = [sys.executable, "-m", "benchmarks.dataset_scale", "--train-run", str(dataset)]
    command += ["--cache-home", str(homes[args.workers]), "--workers", str(args.workers)]
    child = subprocess.run(command, cwd=Path(__file__).parent.parent, capture_output=True, text=True)
    if child.returncode:
        sys.exit(f"the training child failed:\n{child.stderr[-3000:]}")
    training = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"train: {training['n_train']} clips, {training['seconds']:.1f} s, peak RSS {training['peak_rss_mb']:.0f} MB")
    if not args.keep:
        for home in homes.values():
            shutil.rmtree(home)
    return {
        "machine": {**machine("cpu"), "usable_cores": len(os.sched_getaffinity(0))},
        "settings": {
            "clips": len(paths),
            "workers": args.workers,
            "seed": args.seed,
            "audio": {"sr": SCRATCH_AUDIO.sr, "vad": SCRATCH_AUDIO.vad, "trim_db": SCRATCH_AUDIO.trim_db},
            "dataset": str(dataset),
            "sources": len(sources),
            "chunk": cache.CHUNK,
        },
        "dataset_seconds": generate_s,
        "extraction": {
            "serial_seconds": t1,
            "parallel_seconds": t_n,
            "reuse_seconds": t_reuse,
            "ms_per_clip_serial": 1e3 * t1 / len(paths),
            "clips_per_s_serial": len(paths) / t1,
            "clips_per_s_parallel": len(paths) / t_n,
            "workers_speedup": t1 / t_n,
            "cache_speedup": t_n / t_reuse,
            "identical_1_vs_n_workers": identical,
            "bad_clips": len(reused.bad),
            "stored_mb": reused.nbytes / 2**20,
            "parent_peak_rss_mb": parent_rss,
            "worker_peak_rss_mb": workers_rss,
        },
        "training": training,
        "targets": TARGETS,
    }


WORK = Path(tempfile.gettempdir()) / "spoken-digits-scale"
OUT = Path(__file__).parent.parent / "docs" / "findings" / "scale"


def rows(data: str | None, *, quick: bool) -> list[Row]:
    """This benchmark as `python -m benchmarks` rows (3,000 clips with --quick; scale.json only for the real run)."""
    workers = len(os.sched_getaffinity(0))
    args = argparse.Namespace(
        clips=3000 if quick else 100_000, workers=workers, work=WORK, fsdd=data, seed=0, keep=False
    )
    result = run(args)
    if not quick:
        write_json(OUT / "scale.json", result)
    ex, tr, n = result["extraction"], result["training"], result["settings"]["clips"]
    rss = tr["peak_rss_mb"]
    return [
        Row(f"front end, {n} clips, {workers} workers", "1 worker", ex["serial_seconds"], ex["parallel_seconds"],
            f"stores identical: {ex['identical_1_vs_n_workers']}", f">= {0.8 * workers:.1f}x",
            ex["workers_speedup"] >= 0.8 * workers),
        Row(f"front end again, {n} clips", "first extraction", ex["parallel_seconds"], ex["reuse_seconds"],
            "reused from the cache", ">= 20x", ex["cache_speedup"] >= 20),
        Row(f"train from the cache, {n} clips, 1 epoch", "", None, tr["seconds"], f"peak RSS {rss:.0f} MB",
            "<= 2048 MB", rss <= 2048),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dataset_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100_000, help="synthetic one-second clips to make and extract")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="parallel extraction")
    parser.add_argument(
        "--work",
        type=Path,
        default=WORK,
        help="where the dataset (kept for reuse) and the caches (removed after) go",
    )
    parser.add_argument("--fsdd", help="FSDD folder the words come from (default: $FSDD_ROOT)")
    parser.add_argument("--seed", type=int, default=0, help="draws every clip and the training order")
    parser.add_argument("--keep", action="store_true", help="keep the two caches under --work")
    parser.add_argument(
        "--out",
        type=Path,
        default=OUT,
        help="where scale.json goes",
    )
    parser.add_argument("--train-run", type=Path, help=argparse.SUPPRESS)  # the training child's entry
    parser.add_argument("--cache-home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_run is not None:
        print(json.dumps(train_once(args.train_run, args.cache_home, args.workers)))
        return
    result = run(args)
    write_json(args.out / "scale.json", result)
    print(json.dumps({k: result[k] for k in ("extraction", "training")}, indent=2))


if __name__ == "__main__":
    main()
