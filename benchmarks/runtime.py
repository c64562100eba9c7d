"""What it costs to answer: cold start, peak memory, install size and warm latency, lean runtime against the
full install and pocketsphinx, in one run on one machine.

    python -m benchmarks.runtime [--checkpoint runs/pretrained/model.pt] [--files 300] [--repeats 5] [--out DIR]

- The lean runtime is installed as a user would (benchmarks.lean: a fresh venv, no torch) and answers with the
  packaged model; the full install is this venv (torch present), on the same packaged ONNX graph and, with
  --checkpoint, on the torch checkpoint it was exported from (the same answers are required of all three).
- Cold: a new process per command (`spoken-digits predict FILE...`), median wall time over --repeats, and its
  peak RSS (GNU time). pocketsphinx (stock en-us model held to the ten digit words) runs the same files
  in a new process too. Warm: one loaded predictor, per one-word clip, detector and string decoding included.
Writes runtime.json to --out (default docs/findings/runtime). Needs the peer extra for pocketsphinx.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import clips as fsdd_clips
from benchmarks.lean import lean_venv, site_packages_mb
from spoken_digits.atomic import write_json
from spoken_digits.device import machine

GNU_TIME = "/usr/bin/time"  # Debian's time package
TARGETS = {"cold_s": 1.0, "cold_mb": 150.0, "install_mb": 150.0, "warm_ms": 10.0}
WARM = """
import json, statistics, sys, time
import soundfile as sf
from spoken_digits.recognize.load import load_predictor
from spoken_digits.recognize.strings import transcribe
p = load_predictor()
waves = [sf.read(f, dtype="float32")[0] for f in sys.argv[1:]]
import soxr
waves = [soxr.resample(y, 8000, p.audio_cfg.sr) for y in waves]
transcribe(p, waves[:5]); p.probabilities(waves[:5])
def each(fn):
    times = []
    for y in waves:
        t = time.perf_counter(); fn(y); times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)
from spoken_digits.frontend import endpoint
print(json.dumps({"string_ms": each(lambda y: transcribe(p, [y])), "single_ms": each(lambda y: p.probabilities([y])),
                  "detector_ms": each(lambda y: endpoint.detector().probabilities([y], p.audio_cfg.sr)),
                  "torch_loaded": "torch" in sys.modules}))
"""
SPHINX = """
import sys, soundfile as sf
from benchmarks.sphinx import Sphinx
s = Sphinx()
for f in sys.argv[1:]:
    y, sr = sf.read(f, dtype="float32")
    print(f, s.digits(y, sr))
"""


def cold(argv: list[str], repeats: int, env: dict[str, str] | None = None) -> dict[str, float]:
    """Median wall seconds and the highest peak RSS (MB) of `repeats` fresh processes running `argv`. The
    peak comes from GNU time (/usr/bin/time): a child forked from this process (torch loaded) would count
    this process's pages until it execs."""
    walls, peaks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rss"
        for _ in range(repeats):
            started = time.perf_counter()
            done = subprocess.run(
                [GNU_TIME, "-f", "%M", "-o", str(report), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env=env,
            )
            walls.append(time.perf_counter() - started)
            if done.returncode:
                raise RuntimeError(f"{argv[:3]} failed: {done.stderr.decode()[-500:]}")
            peaks.append(int(report.read_text().split()[-1]) / 1024)
    return {"seconds": statistics.median(walls), "peak_mb": max(peaks)}


def answers(argv: list[str], env: dict[str, str] | None = None) -> list[str]:
    """The digit strings `spoken-digits predict ... --json` gives, in file order."""
    out = subprocess.run([*argv, "--json"], capture_output=True, text=True, env=env, check=True).stdout
    return [r.get("text", "") for r in json.loads(out)]


def measure(lean: Path, files: list[str], one: str, checkpoint: Path | None, repeats: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    here = Path(sys.executable).parent
    commands = {
        "lean runtime (packaged ONNX)": [str(lean / "spoken-digits"), "predict"],
        "full install (packaged ONNX)": [str(here / "spoken-digits"), "predict"],
    }
    if checkpoint is not None:
        commands["full install (torch checkpoint)"] = [str(here / "spoken-digits"), "predict", str(checkpoint)]
    sphinx = [sys.executable, "-c", SPHINX]  # run from the repository root: benchmarks.sphinx is importable
    result: dict[str, Any] = {"one_file": {}, "all_files": {}}
    for name, argv in {**commands, "pocketsphinx": sphinx}.items():
        result["one_file"][name] = cold([*argv, one], repeats, env)
        result["all_files"][name] = cold([*argv, *files], max(1, repeats // 2), env)
        print(name, result["one_file"][name], result["all_files"][name], file=sys.stderr)
    texts = {name: answers([*argv, *files], env) for name, argv in commands.items()}
    lean_texts = texts["lean runtime (packaged ONNX)"]
    result["same_answers_as_lean"] = {
        name: sum(a == b for a, b in zip(got, lean_texts, strict=True)) for name, got in texts.items()
    }
    truth = [Path(f).name.split("_")[0] for f in files]
    result["accuracy_lean"] = sum(a == t for a, t in zip(lean_texts, truth, strict=True)) / len(files)
    warm = subprocess.run([str(lean / "python"), "-c", WARM, *files], capture_output=True, text=True, env=env)
    if warm.returncode:
        raise RuntimeError(warm.stderr[-1000:])
    result["warm"] = json.loads(warm.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="the torch checkpoint the packaged model was exported from")
    parser.add_argument("--files", type=int, default=300, help="official test clips for the many-file run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", help="FSDD folder (default: $FSDD_ROOT)")
    parser.add_argument("--out", type=Path, default=Path("docs/findings/runtime"))
    args = parser.parse_args(argv)
    test = [c for c in fsdd_clips(args.data) if c.take < 5][: args.files]  # takes 0-4: FSDD's official test split
    files = [str(c.path) for c in test]
    with tempfile.TemporaryDirectory() as tmp:
        lean = lean_venv(Path(tmp) / "venv")
        result = measure(lean, files, files[0], args.checkpoint, args.repeats)
        installed = site_packages_mb(Path(tmp) / "venv")
        result["install_mb"] = {"lean runtime": installed.pop("total"), "largest": dict(list(installed.items())[:4])}
    import torch

    result["install_mb"]["torch alone (CPU build)"] = sum(
        p.stat().st_size for p in Path(torch.__file__).parent.rglob("*") if p.is_file()
    ) / 1e6
    one = result["one_file"]["lean runtime (packaged ONNX)"]
    result["targets"] = TARGETS
    result["met"] = {
        "cold_s": one["seconds"] <= TARGETS["cold_s"],
        "cold_mb": one["peak_mb"] <= TARGETS["cold_mb"],
        "install_mb": result["install_mb"]["lean runtime"] <= TARGETS["install_mb"],
        "warm_ms": result["warm"]["string_ms"] <= TARGETS["warm_ms"],
        "faster_than_pocketsphinx": result["all_files"]["lean runtime (packaged ONNX)"]["seconds"]
        < result["all_files"]["pocketsphinx"]["seconds"],
        "same_answers": all(n == len(files) for n in result["same_answers_as_lean"].values()),
    }
    result.update(files=len(files), repeats=args.repeats, machine=machine("cpu"))
    write_json(args.out / "runtime.json", result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
