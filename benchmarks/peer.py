"""pocketsphinx beside the robustness benchmark: the same corrupted clips, both recognisers, one table, one run.

    python -m benchmarks.peer MODEL [--limit N] [--conditions ...] [--out DIR] [--seed S] [--data DIR]

pocketsphinx is CMU's offline recogniser; its stock US English acoustic model (never trained on FSDD) is held
to a grammar of the ten digit words, so like ours it answers one digit or nothing. Each FSDD official test clip
is corrupted once per condition (spoken_digits.evaluation.robustness: same seed, same clips) and that very
waveform goes to both. A clip a recogniser refuses (ours: no speech found; pocketsphinx: no hypothesis) counts
as wrong for it.
Writes peer.json and peer.md to --out. Needs the peer extra: pip install 'spoken-digits[peer]'.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import clips as fsdd_clips
from benchmarks.sphinx import GRAMMAR, SPHINX_SR, Sphinx
from spoken_digits.atomic import write_json, write_text
from spoken_digits.config import SplitConfig
from spoken_digits.data import fsdd
from spoken_digits.device import machine
from spoken_digits.errors import ParameterError, SpokenDigitsError
from spoken_digits.evaluation.robustness import Condition, Corrupter, predicted_labels, select_conditions, tested_clips
from spoken_digits.frontend import audio
from spoken_digits.recognize.load import load_predictor
from spoken_digits.recognize.predict import BasePredictor

NAMES = ("spoken-digits", "pocketsphinx")
INSTALL = "pip install 'spoken-digits[peer]'"


def score_condition(
    predictor: BasePredictor,
    sphinx: Sphinx,
    corrupter: Corrupter,
    condition: Condition,
    tested: Sequence[tuple[fsdd.Clip, list[fsdd.Clip]]],
    waves: Sequence[np.ndarray],
) -> dict[str, Any]:
    """One row: `condition` applied once to each clip, the same waveforms scored by both recognisers."""
    corrupted = [corrupter(condition, c, y, pool) for (c, pool), y in zip(tested, waves, strict=True)]
    truth = [str(c.digit) for c, _ in tested]
    row: dict[str, Any] = {"condition": condition.name, "kind": condition.kind, "n": len(truth)}
    recognisers: dict[str, Callable[[], tuple[list[str | None], int]]] = {
        NAMES[0]: lambda: predicted_labels(predictor, corrupted),
        NAMES[1]: lambda: sphinx.labels(corrupted, corrupter.sr),
    }
    for name, recognise in recognisers.items():
        started = time.perf_counter()
        labels, refused = recognise()
        correct = sum(label == t for label, t in zip(labels, truth, strict=True))
        seconds = (time.perf_counter() - started) / len(labels)
        row[name] = {"accuracy": correct / len(labels), "correct": correct, "refused": refused, "n": len(labels)}
        row[name]["ms_per_clip"] = round(1000 * seconds, 3)
    return row | {"params": dict(condition.params)}


def run(
    model: str | os.PathLike[str],
    *,
    data: str | None = None,
    seed: int = 0,
    conditions: Sequence[str] | None = None,
    limit: int | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Both recognisers on the official test clips (or a seeded `limit` of them) under each condition."""
    chosen = select_conditions(conditions)  # bad names fail before any loading
    if limit is not None and limit < 1:
        raise ParameterError(f"--limit must be at least 1, got {limit}")
    sphinx = Sphinx()
    predictor = load_predictor(model)
    clips, split, sr = fsdd_clips(data), SplitConfig(), predictor.config.audio.sr
    tested = tested_clips(predictor, clips, split, seed=seed, limit=limit)
    waves = [audio.read_audio(c.path, sr, max_duration=predictor.config.audio.max_duration) for c, _ in tested]
    corrupter, rows = Corrupter(sr, seed), []
    for condition in chosen:
        rows.append(score_condition(predictor, sphinx, corrupter, condition, tested, waves))
        say(f"{condition.name:14s} " + "  ".join(f"{n} {rows[-1][n]['accuracy']:.3f}" for n in NAMES))
    peer: dict[str, Any] = {"version": sphinx.version, "model": "stock en-us (pocketsphinx wheel)", "grammar": GRAMMAR}
    peer |= {"sr": SPHINX_SR, "resampled_from": sr}
    head = {"model": str(model), "machine": machine("cpu"), "pocketsphinx": peer, "split": split.name.value}
    return head | {"seed": seed, "limit": limit, "sr": sr, "n_clips": len(tested), "conditions": rows}


def table(result: dict[str, Any]) -> str:
    """One Markdown table: accuracy of each recogniser per condition (refusals in brackets), and n."""
    lines = [f"| condition | {' | '.join(NAMES)} | n |", "|---|---:|---:|---:|"]
    for r in result["conditions"]:
        cells = (
            f"{s['accuracy']:.3f}" + (f" ({s['refused']} refused)" if s["refused"] else "")
            for s in (r[n] for n in NAMES)
        )
        lines.append(f"| {r['condition']} | {' | '.join(cells)} | {r['n']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="our model: a checkpoint (.pt) or an exported .onnx")
    parser.add_argument("--limit", type=int, help="a seeded subset of this many test clips, balanced over digits")
    parser.add_argument("--conditions", nargs="+", help="condition names or kinds (default: all but noisedir)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "peer", help="where peer.md/json go")
    parser.add_argument("--seed", type=int, default=0, help="picks the subset and every corruption")
    parser.add_argument("--data", help="FSDD folder (default: $FSDD_ROOT)")
    args = parser.parse_args()
    try:
        result = run(args.model, data=args.data, seed=args.seed, conditions=args.conditions, limit=args.limit)
    except ModuleNotFoundError as exc:
        if exc.name != "pocketsphinx":
            raise
        sys.exit(f"python -m benchmarks.peer: pocketsphinx is not installed; {INSTALL}")
    except SpokenDigitsError as exc:
        sys.exit(f"python -m benchmarks.peer: {exc}")
    head = f"# pocketsphinx beside spoken-digits\n\n`{args.model}` and pocketsphinx {result['pocketsphinx']['version']}"
    head += f" (digit grammar) on the same {result['n_clips']} corrupted {result['split']} test clips, seed "
    head += f"{args.seed}; refused clips count as wrong. Regenerate with `python -m benchmarks.peer MODEL`.\n\n"
    write_json(args.out / "peer.json", result)
    write_text(args.out / "peer.md", head + table(result) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()
