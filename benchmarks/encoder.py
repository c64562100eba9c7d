"""What the speech encoder costs at answer time: one file in, digit out, warm, for the default model
against the scratch preset's model, timed in the same process on the same clips.

    python -m benchmarks.encoder SCRATCH_MODEL DEFAULT_MODEL [--clips 50] [--out DIR]

One torch thread, as a small device or one server stream would have. Each clip is timed alone
(`predict_files([path])`: read, resample, detector, front end, head), median over the clips; the default
model also as exported to ONNX (`spoken-digits export`, run by ONNX Runtime).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import Row, clips, paths
from spoken_digits.apps.export import export_onnx
from spoken_digits.atomic import write_json
from spoken_digits.recognize.load import load_predictor
from spoken_digits.recognize.predict import BasePredictor

TARGET_S = 0.020  # issue 22: one clip, file in -> digit out, <= 20 ms warm


def per_clip(predictor: BasePredictor, files: list[Path]) -> tuple[float, float, list[str | None]]:
    """Median and 95th-percentile seconds of one file's answer, each file alone, and the digits heard."""
    predictor.predict_files(files[:2])  # warm-up: the detector's session and the first allocations
    times, digits = [], []
    for path in files:
        started = time.perf_counter()
        (result,) = predictor.predict_files([path])
        times.append(time.perf_counter() - started)
        digits.append(result.digit)
    return statistics.median(times), statistics.quantiles(times, n=20)[-1], digits


def run(scratch: Path, default: Path, *, data: str | None, n: int) -> dict[str, object]:
    torch.set_num_threads(1)
    selection = [c for c in clips(data) if c.take < 5][:: 300 // n][:n]  # official test clips (takes 0-4), spread
    files, truth = paths(selection), [str(c.digit) for c in selection]
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(default, Path(tmp) / "default.onnx")
        models = {"scratch": scratch, "default": default, "default, ONNX": Path(tmp) / "default.onnx"}
        timed = {name: per_clip(load_predictor(path), files) for name, path in models.items()}
    (s50, _, _), (d50, d95, _), (o50, o95, _) = timed.values()
    right = {name: sum(a == b for a, b in zip(t[2], truth, strict=True)) / len(truth) for name, t in timed.items()}
    row = Row(
        f"one clip: file in, digit out, warm, 1 thread ({len(files)} official test clips, median)",
        "the scratch preset's model",
        s50,
        d50,
        f"95th percentile {1000 * d95:.1f} ms; right: scratch {right['scratch']:.3f}, default {right['default']:.3f}",
        f"<= {1000 * TARGET_S:.0f} ms",
        d50 <= TARGET_S,
    )
    onnx = Row(
        "the same, the default model exported to ONNX (ONNX Runtime)",
        "the scratch preset's model (torch)",
        s50,
        o50,
        f"95th percentile {1000 * o95:.1f} ms; right: {right['default, ONNX']:.3f}",
        f"<= {1000 * TARGET_S:.0f} ms",
        o50 <= TARGET_S,
    )
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    rows = [row.to_dict(), onnx.to_dict()]
    return {"machine": machine, "scratch": str(scratch), "default": str(default), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.encoder", description=__doc__.splitlines()[0])
    parser.add_argument("scratch", type=Path, help="a model trained with --preset scratch")
    parser.add_argument("default", type=Path, help="a model trained with the default preset (the speech encoder)")
    parser.add_argument("--clips", type=int, default=50, help="official test clips to time (default 50)")
    parser.add_argument("--data", help="FSDD folder (default: $FSDD_ROOT)")
    parser.add_argument("--out", type=Path, default=Path("docs/findings/encoder/speed"), help="where speed.json goes")
    args = parser.parse_args()
    result = run(args.scratch, args.default, data=args.data, n=args.clips)
    write_json(args.out / "speed.json", result)
    for row in result["rows"]:  # type: ignore[attr-defined]
        print(row)


if __name__ == "__main__":
    main()
