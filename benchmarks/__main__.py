"""Run every benchmark and write benchmarks/results.md and results.json.

    python -m benchmarks [--data FSDD_DIR] [--quick]

Each comparison runs the reference and ours in this one process run on this machine, and reports
their ratio. Needs the bench extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from benchmarks import dataset_scale, doctor, end_to_end, features, inference, realworld, training
from benchmarks.common import Row
from spoken_digits.atomic import write_json, write_text


def table(rows: list[Row]) -> str:
    lines = [
        "| what | reference | reference time | ours | ratio | check | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = f"{r.reference_s:.4f} s" if r.reference_s is not None else ""
        ratio = f"{r.ratio:.1f}x" if r.ratio is not None else ""
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(
            f"| {r.what} | {r.reference} | {ref} | {r.ours_s:.4f} s | {ratio} | {r.check} | {r.target} | {met} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="FSDD folder (default: $FSDD_ROOT)")
    parser.add_argument("--quick", action="store_true", help="a few clips and epochs: checks the benchmarks run")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="where results.md/json go")
    args = parser.parse_args()
    started = time.perf_counter()
    limit, epochs, repeats = (120, 2, 2) if args.quick else (None, 10, 5)
    rows: list[Row] = []
    for name, step in (
        ("features", lambda: features.run(args.data, limit=limit, repeats=repeats)),
        ("training", lambda: training.run(args.data, limit=limit, epochs=epochs)),
        ("end to end", lambda: end_to_end.run(args.data, epochs=2 if args.quick else 40)),
        ("inference", lambda: inference.run(args.data, repeats=20 if args.quick else 200)),
        ("real recordings", lambda: realworld.run(args.data, epochs=2 if args.quick else 3, repeats=repeats * 4)),
        ("doctor", lambda: doctor.run(args.data, limit=limit, epochs=epochs, repeats=max(2, repeats // 2))),
        ("dataset scale", lambda: dataset_scale.rows(args.data, quick=args.quick)),
    ):
        print(f"benchmark: {name} ...", flush=True)
        rows += step()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    head = f"# Benchmarks\n\n{'Quick check (not the real measurement)' if args.quick else 'Measured'} on {machine}; "
    head += f"{time.perf_counter() - started:.0f} s in all. Regenerate with `python -m benchmarks`.\n\n"
    write_text(args.out / "results.md", head + table(rows) + "\n")
    write_json(
        args.out / "results.json", {"machine": machine, "quick": args.quick, "rows": [r.to_dict() for r in rows]}
    )
    print(table(rows))


if __name__ == "__main__":
    main()
