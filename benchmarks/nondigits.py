"""Only digits: false digits a minute in speech that holds none, single words through the string path
against `--single`, and calibration on voices never trained on; word models and pocketsphinx, one run.

    python -m benchmarks.nondigits MODEL... [--no-peer] [--out DIR] [--seed S] [--data DIR]

Non-digit speech, 60 s of each kind, words 0.2-0.6 s apart over room tone (white noise at -60 dBFS):
- tts-espeak, tts-flite, tts-festival: everyday English words (WORDS: no digit word, no homophone of one)
  said by the speech synthesisers' voices (Debian's espeak-ng, flite, festival). espeak-ng: voices and words
  no model here has heard. flite and festival: the voices of `--filler-voices` (data/tts.py), saying other words
  than it trained on (WORDS and tts.TRAIN_WORDS share none): this flatters it less, but it does.
- backwards: FSDD official test words played backwards; splices: one test speaker's "sentences" made of
  the first part of one word joined to the last part of another. Both are kinds a `--filler` model's filler
  class is made of (from training takes): these two rows flatter it.
Single words: the official test clips (voices heard in training) and the ten digit words said by every
espeak-ng voice (voices never heard), through the string path (`transcribe`, what `predict` gives) and
one word per clip (`--single`); ECE of the single-word probabilities on both.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.peer import INSTALL
from benchmarks.strings import LOOP, ROOM_DBFS, Builder, backwards, official_test, string_recognisers
from spoken_digits.atomic import write_json, write_text
from spoken_digits.data import tts
from spoken_digits.device import machine
from spoken_digits.errors import SpokenDigitsError
from spoken_digits.evaluation.calibration import expected_calibration_error
from spoken_digits.frontend import audio, corrupt
from spoken_digits.recognize.predict import BasePredictor
from spoken_digits.recognize.strings import transcribe
from spoken_digits.training.filler import speech_span
from spoken_digits.training.studyreport import describe_machine

SECONDS = 60.0  # of each kind of non-digit speech
WORDS = """
apple table window garden kitchen morning evening yellow purple orange water coffee paper pencil
letter number button pocket jacket basket river mountain forest island village city station market
doctor teacher student mother father sister brother friend people family little happy funny quiet
simple open close start finish listen answer question message picture music movie story dinner lunch
breakfast sugar butter cheese bread salad chicken rabbit monkey tiger turtle dragon rocket planet
silver golden winter summer autumn spring yesterday tomorrow always never maybe really please thank
hello goodbye welcome sorry again about after before under over between inside outside around
through behind nothing something anything everything somebody nobody travel holiday computer phone
keyboard mouse screen camera battery engine wheel bicycle airport hotel office meeting problem
system money credit account password address email internet weather cloudy rainy sunny windy
""".split()  # noqa: SIM905 (a word list reads better as text)
ESPEAK = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-us+f3", "en-gb+f4")
FLITE = ("slt", "awb", "rms", "kal16")
FESTIVAL = ("kal_diphone",)


ENGINES = {"espeak": ESPEAK, "flite": FLITE, "festival": FESTIVAL}


def voices() -> str:
    """ "engine:voice,..." for every synthesiser installed here."""
    return ",".join(f"{e}:{v}" for e, names in ENGINES.items() if shutil.which(tts.ENGINES[e]) for v in names)


def said(voice: str, words: Sequence[str], folder: Path, sr: int) -> list[np.ndarray]:
    """Each of `words` said by one "engine:voice", at `sr`, with the silence the engine put around it."""
    return [audio.read_audio(p, sr) for p in tts.said(voice, words, folder, per_word=len(voice.split(",")))]


def spoken_words(pool: Sequence[np.ndarray], rng: np.random.Generator, sr: int) -> list[np.ndarray]:
    """SECONDS of words drawn from `pool`, 0.2-0.6 s apart, as 10 s recordings over room tone."""
    out: list[np.ndarray] = []
    while sum(len(y) for y in out) < SECONDS * sr:
        parts: list[np.ndarray] = []
        while sum(len(p) for p in parts) < 10 * sr:
            parts += [pool[int(rng.integers(len(pool)))], np.zeros(round(rng.uniform(0.2, 0.6) * sr), np.float32)]
        y = np.concatenate(parts)
        out.append((y + corrupt.noise("white", len(y), rng) * np.float32(10 ** (ROOM_DBFS / 20))).astype(np.float32))
    return out


def splices(builder: Builder, rng: np.random.Generator) -> list[np.ndarray]:
    """SECONDS of `splice_pool`'s non-words, spoken as `spoken_words` speaks them."""
    return spoken_words(splice_pool(builder, rng), rng, builder.sr)


def splice_pool(builder: Builder, rng: np.random.Generator) -> list[np.ndarray]:
    """Per test speaker, 40 draws of non-words: one word's speech cut 35-65% of the way in, joined to another
    digit's speech from 35-65% of the way in (the training filler's splices, on test takes)."""
    pool = []
    for own in builder.by_speaker.values():
        clips = [c for group in own.values() for c in group]
        for _ in range(40):
            a, b = clips[int(rng.integers(len(clips)))], clips[int(rng.integers(len(clips)))]
            if a.digit == b.digit:
                continue
            x, y = builder.wave(a), builder.wave(b)
            (a0, a1), (b0, b1) = speech_span(torch.from_numpy(x)), speech_span(torch.from_numpy(y))
            cut_x, cut_y = (round(s + (e - s) * rng.uniform(0.35, 0.65)) for s, e in ((a0, a1), (b0, b1)))
            pool.append(np.concatenate([x[:cut_x], y[cut_y:]]))
    return pool


def singles(predictor: BasePredictor, waves: Sequence[np.ndarray], truth: Sequence[str]) -> dict[str, Any]:
    """Accuracy of one word per clip through the string path and through --single, and --single's ECE."""
    heard = [t.text for t in transcribe(predictor, waves)]
    probabilities = predictor.probabilities(waves)
    index = [predictor.classes.index(t) for t in truth]
    return {
        "n": len(truth),
        "string_path": float(np.mean([h == t for h, t in zip(heard, truth, strict=True)])),
        "single": float(np.mean(probabilities.argmax(1) == np.array(index))),
        "none_heard": int(sum(h == "" for h in heard)),
        "ece": expected_calibration_error(probabilities, np.array(index)),
    }


def run(
    models: Sequence[str], *, data: str | None, seed: int, peer: bool, say: Callable[[str], None]
) -> dict[str, Any]:
    """Every row for every model (and pocketsphinx on the non-digit rows), the same audio for all."""
    predictors, sr, clips, fold, builder = official_test(models, data)
    rng = np.random.default_rng(seed)
    found = voices()
    if "espeak:" not in found:
        raise SpokenDigitsError(f"espeak-ng is missing: its voices are the held-out rows; {tts.INSTALL['espeak']}")
    rows: dict[str, list[np.ndarray]] = {}
    digit_waves: list[np.ndarray] = []
    digit_truth: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ENGINES:
            mine = ",".join(v for v in found.split(",") if v.startswith(f"{engine}:"))
            if mine:
                rows[f"tts-{engine}"] = spoken_words(said(mine, WORDS, Path(tmp), sr), rng, sr)
        for voice in [v for v in found.split(",") if v.startswith("espeak:")]:  # voices no model trains on
            digit_waves += said(voice, tts.DIGIT_WORDS, Path(tmp), sr)
            digit_truth += [str(k) for k in range(len(tts.DIGIT_WORDS))]
    rows["backwards"] = backwards(builder, rng)
    rows["splices"] = splices(builder, rng)
    recognisers, sphinx = string_recognisers(predictors, sr, peer=peer)
    table = []
    for name, waves in rows.items():
        minutes = sum(len(y) for y in waves) / sr / 60
        row: dict[str, Any] = {"kind": name, "minutes": round(minutes, 2)}
        for who, recognise in recognisers.items():
            heard = recognise(waves)
            row[who] = sum(len(h) for h in heard) / minutes
        table.append(row)
        say(f"{name:14s} " + "  ".join(f"{w}: {row[w]:.1f}/min" for w in recognisers))
    test = [clips[i] for i in fold.test]
    words = {}
    for name, p in predictors.items():
        words[name] = {
            "fsdd-test": singles(p, [builder.wave(c) for c in test], [str(c.digit) for c in test]),
            "tts-digits": singles(p, digit_waves, digit_truth),
        }
        say(f"single words {name}: {words[name]}")
    head = {"models": list(predictors), "machine": machine("cpu"), "seed": seed, "sr": sr, "voices": found}
    if sphinx is not None:
        head["pocketsphinx"] = {"version": sphinx.version, "grammar": LOOP}
    return head | {"false_digits_per_minute": table, "single_words": words}


def markdown(result: dict[str, Any]) -> str:
    """Two tables: false digits a minute per kind and recogniser; single words and ECE per model."""
    who = [*result["models"], *(["pocketsphinx"] if "pocketsphinx" in result else [])]
    names = [Path(w).parent.name or w for w in who]
    lines = ["| non-digit speech | minutes | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(who)]
    for row in result["false_digits_per_minute"]:
        lines.append(f"| {row['kind']} | {row['minutes']:.1f} | " + " | ".join(f"{row[w]:.1f}" for w in who) + " |")
    lines += [
        "",
        "| model | clips | n | string path | --single | none heard | ECE (--single) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, kinds in result["single_words"].items():
        for kind, r in kinds.items():
            lines.append(
                f"| {Path(name).parent.name or name} | {kind} | {r['n']} | {r['string_path']:.4f} | {r['single']:.4f} "
                f"| {r['none_heard']} | {r['ece']:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nondigits", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="word-model checkpoints (.pt) or exported models (.onnx)")
    parser.add_argument("--no-peer", action="store_true", help="leave pocketsphinx out")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "nondigits", help="where the tables go")
    parser.add_argument("--seed", type=int, default=0, help="draws every recording")
    parser.add_argument("--data", help="FSDD folder (default: $FSDD_ROOT)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        result = run(args.models, data=args.data, seed=args.seed, peer=not args.no_peer, say=print)
    except ModuleNotFoundError as exc:
        if exc.name != "pocketsphinx":
            raise
        sys.exit(f"python -m benchmarks.nondigits: pocketsphinx is not installed; {INSTALL} (or --no-peer)")
    except SpokenDigitsError as exc:
        sys.exit(f"python -m benchmarks.nondigits: {exc}")
    head = "# Only digits\n\nFalse digits a minute in speech with no digit, and single words through the string path, "
    head += f"seed {args.seed}, {describe_machine(result['machine'])}. "
    head += "Regenerate with `python -m benchmarks.nondigits MODEL...`.\n\n"
    write_json(args.out / "nondigits.json", result)
    write_text(args.out / "nondigits.md", head + markdown(result) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
