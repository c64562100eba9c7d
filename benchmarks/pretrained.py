"""Does `make pretrained` remake the packaged model? Train and export it again, then compare with the package.

    python -m benchmarks.pretrained [--data DIR] [--out docs/findings/runtime]

Runs the two commands `make pretrained` runs (train --split all, then the ONNX export) into a temporary
folder, never touching the package, and compares the new model with the packaged one: the file's sha256,
the validation accuracy and temperature, and the answers (digit strings and probabilities) on FSDD's 300
official test clips. Writes reproduce.json to --out. About 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import clips as fsdd_clips
from spoken_digits import pretrained
from spoken_digits.atomic import write_json
from spoken_digits.device import machine
from spoken_digits.frontend import audio
from spoken_digits.recognize.load import load_predictor
from spoken_digits.recognize.strings import transcribe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="FSDD folder (default: $FSDD_ROOT)")
    parser.add_argument("--out", type=Path, default=Path("docs/findings/runtime"))
    args = parser.parse_args(argv)
    packaged = load_predictor()
    test = [c for c in fsdd_clips(args.data) if c.take < 5]  # takes 0-4: FSDD's official test split
    waves = [audio.read_audio(c.path, packaged.audio_cfg.sr) for c in test]
    with tempfile.TemporaryDirectory() as tmp:
        run, onnx = Path(tmp) / "run", Path(tmp) / "digits.onnx"
        cli = [sys.executable, "-m", "spoken_digits"]
        data = ["--data", args.data] if args.data else []
        subprocess.run([*cli, "train", "--split", "all", "--out", str(run), *data], check=True)
        subprocess.run([*cli, "export", str(run / "model.pt"), "--onnx", str(onnx)], check=True)
        again = load_predictor(onnx)
        metrics = json.loads((run / "metrics.json").read_text())
        sha = hashlib.sha256(onnx.read_bytes()).hexdigest()
        ours, theirs = transcribe(packaged, waves), transcribe(again, waves)
    card = pretrained.card()
    same = [a.text == b.text for a, b in zip(ours, theirs, strict=True)]
    diffs = [
        abs(x.probability - y.probability)
        for a, b in zip(ours, theirs, strict=True)
        if a.text == b.text
        for x, y in zip(a.words, b.words, strict=True)
    ]
    truth = [str(c.digit) for c in test]
    result: dict[str, Any] = {
        "same_file": sha == card["sha256"],
        "val_accuracy": {"packaged": card["metrics"]["val_accuracy"], "again": metrics["val_accuracy"]},
        "temperature": {"packaged": card["temperature"], "again": again.temperature},
        "same_answers": sum(same),
        "files": len(test),
        "accuracy": {
            "packaged": sum(t.text == d for t, d in zip(ours, truth, strict=True)) / len(test),
            "again": sum(t.text == d for t, d in zip(theirs, truth, strict=True)) / len(test),
        },
        "max_probability_difference": float(np.max(diffs)) if diffs else None,
        "machine": machine("cpu"),
    }
    write_json(args.out / "reproduce.json", result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
