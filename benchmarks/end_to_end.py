"""End to end: `spoken-digits train --preset seed` cold, from process start to metrics.json written
(its plots follow), against the seed's pipeline written plainly (seed_reference.py) to its result
written, same epochs; and the wall time and peak memory of a scratch-preset run (the default before
the speech encoder)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Row
from spoken_digits.data import fsdd

HERE = Path(__file__).parent

PEAK_RSS = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _timed(argv: list[str], result: Path) -> float:
    """Seconds from starting `argv` to `result` being written (what a user waits for)."""
    started = time.time()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return result.stat().st_mtime - started


def run(data: str | None, *, epochs: int) -> list[Row]:
    root = fsdd.locate(data, download=False)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        ref_s = _timed([sys.executable, str(HERE / "seed_reference.py"), "--data", str(root), "--epochs", str(epochs),
                        "--out", str(out / "reference.json")], out / "reference.json")  # fmt: skip
        ours_argv = [sys.executable, "-m", "spoken_digits", "train", "--preset", "seed", "--epochs", str(epochs),
                     "--data", str(root), "--no-download"]  # fmt: skip
        ours_s = _timed([*ours_argv, "--out", str(out / "ours")], out / "ours" / "metrics.json")
        ref_acc = json.loads((out / "reference.json").read_text())["test_accuracy"]
        ours_acc = json.loads((out / "ours" / "metrics.json").read_text())["test_accuracy"]
        scratch = ["--preset", "scratch", "--data", str(root), "--no-download"]
        default = [sys.executable, "-m", "spoken_digits", "train", *scratch]
        started = time.perf_counter()
        peak = subprocess.run([sys.executable, "-c", PEAK_RSS, *default, "--out", str(out / "default")],
                              check=True, capture_output=True, text=True)  # fmt: skip
        default_s = time.perf_counter() - started
        peak_mb = int(peak.stdout.strip()) / 1024  # ru_maxrss is in KiB on Linux
    return [
        Row(
            f"end to end, seed pipeline, {epochs} epochs, cold process",
            "librosa per file + Keras LSTM (seed_reference.py)",
            ref_s,
            ours_s,
            f"test accuracy: reference {ref_acc:.3f}, ours {ours_acc:.3f}",
            ">= 4x",
            ref_s / ours_s >= 4,
        ),
        Row("a `train --preset scratch` run, cold process", "", None, default_s, f"peak RSS {peak_mb:.0f} MiB"),
    ]
