"""FSDD three ways: the built-in loader, re-laid as class folders, and as a manifest with a speaker column.

    python docs/findings/data/equivalence.py [--fsdd DIR] [--epochs N] [--out DIR]

The two re-laid copies are symbolic links to the same recordings (train/ and test/ folders by take; a CSV
with path,label,speaker,split). Each is trained with the default preset and seed 0 on its official split, and
the script records the test accuracy of each, whether the three saw the same clips in the same order and
split, and writes equivalence.json beside itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

from spoken_digits.atomic import write_json
from spoken_digits.config import preset
from spoken_digits.data import fsdd
from spoken_digits.data.sources import open_dataset
from spoken_digits.data.splits import make_folds
from spoken_digits.device import machine
from spoken_digits.training.experiment import train_run

HERE = Path(__file__).parent


def relay(recordings: Path, root: Path) -> tuple[Path, Path]:
    """FSDD as class folders (root/folders/{train,test}/DIGIT/NAME.wav) and a manifest (root/manifest.csv)."""
    rows = ["path,label,speaker,split"]
    for clip in fsdd.index(recordings):
        split = "test" if clip.take in fsdd.TEST_TAKES else "train"
        target = root / "folders" / split / str(clip.digit) / clip.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(clip.path.resolve(), target)
        rows.append(f"{target.relative_to(root)},{clip.digit},{clip.speaker},{split}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "folders", root / "manifest.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd", default=os.environ.get("FSDD_ROOT"), help="FSDD folder (default: $FSDD_ROOT)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the preset's)")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    cfg = preset("default")
    if args.epochs:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=args.epochs))
    result: dict[str, Any] = {"machine": machine("cpu"), "preset": cfg.preset, "epochs": cfg.train.epochs, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folders, manifest = relay(fsdd.locate(args.fsdd), Path(tmp))
        sources = {
            "built-in": open_dataset(args.fsdd),
            "class folders": open_dataset(folders, speaker_pattern=r"^\d_([a-z]+)_"),
            "manifest": open_dataset(manifest),
        }
        order = {name: [(c.path.name, c.label, c.speaker, c.split) for c in d.clips] for name, d in sources.items()}
        folds = {name: make_folds(d.clips, cfg.split)[0].test.tolist() for name, d in sources.items()}
        result["same_clips_and_order"] = len({str(o) for o in order.values()}) == 1
        result["same_split"] = len({str(f) for f in folds.values()}) == 1
        for name, data in sources.items():
            metrics = train_run(cfg, Path(tmp) / name.replace(" ", "-"), data=data, say=print)
            result["runs"][name] = {
                "data": data.describe().replace(tmp, "TMP"),
                "test_accuracy": metrics["test_accuracy"],
                "n_train": metrics["n_train"],
                "n_test": metrics["n_test"],
                "seconds": metrics["seconds"],
            }
            print(name, metrics["test_accuracy"], flush=True)
    accuracies = [r["test_accuracy"] for r in result["runs"].values()]
    result["largest_difference"] = max(accuracies) - min(accuracies)
    write_json(args.out / "equivalence.json", result)
    print(result)


if __name__ == "__main__":
    main()
