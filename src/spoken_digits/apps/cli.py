"""The `spoken-digits` command: argument parsing only; every command calls one library function."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from spoken_digits.apps import answering, commands, limits, options
from spoken_digits.config import FILLER_VOICES
from spoken_digits.errors import SpokenDigitsError

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="spoken-digits",
        description="Recognise spoken digits (or your own words): train models on FSDD or your own labelled "
        "audio, evaluate, diagnose, export and serve them, and hear digits in files or from a microphone.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (*PARSERS, _cache):
        add(sub)
    sub.add_parser("models", help="list the registered models", description="List the registered models.")
    return parser


def _train(sub: SubParsers) -> None:
    """`train`: the run config, the data, where to write, --resume."""
    t = sub.add_parser(
        "train",
        help="train and evaluate a model on FSDD or your own labelled audio",
        description="Train a model on FSDD or any labelled audio (--data) and write metrics.json, model.pt, "
        "config.json, log.csv, confusion.png and curves.png to --out.",
    )
    options.config_options(t)
    t.add_argument("--epochs", type=int, help=f"maximum epochs ({options.by_preset(lambda c: c.train.epochs)})")
    t.add_argument(
        "--patience",
        type=int,
        help="stop after this many epochs without a better validation score; 0 = never "
        f"({options.by_preset(lambda c: c.train.patience)})",
    )
    t.add_argument(
        "--device",
        help="torch device for training, e.g. cpu, cuda or cuda:1; features are computed on it too "
        f"({options.by_preset(lambda c: c.train.device)})",
    )
    t.add_argument(
        "--noise-dir",
        metavar="DIR",
        help="a folder of noise recordings (any format) mixed into training clips beside the generated noise, "
        "at the preset's SNRs; keep it apart from any noise you test with (needs a preset with noise: default or "
        "scratch)",
    )
    t.add_argument(
        "--filler",
        type=float,
        metavar="SHARE",
        help="filler clips (reversed words, splices, pieces of words: a 'not a word' class the string path "
        "rejects) made per average class's clips; 0 = none "
        f"({options.by_preset(lambda c: c.augment.filler)})",
    )
    t.add_argument(
        "--filler-voices",
        metavar="ENGINE:VOICE,...",
        help="speech synthesiser voices (flite, festival) saying everyday words for the filler class, e.g. "
        f"{FILLER_VOICES} (needs apt-get install flite festival festvox-kallpc16k); default: none",
    )
    t.add_argument("--out", type=Path, help="output folder (default: runs/PRESET-MODEL-SPLIT-sSEED)")
    t.add_argument(
        "--workers",
        type=int,
        help="processes reading audio and finding the words, once per dataset (the result is cached on disk "
        "and reused while the files and audio settings stay the same); default: every core",
    )
    t.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue the interrupted run in DIR with the config it "
        "started with (takes no other training option); ends with the metrics of an uninterrupted run",
    )
    options.data_options(t)


def _evaluate(sub: SubParsers) -> None:
    """`evaluate`: score a saved model on a split."""
    e = sub.add_parser(
        "evaluate",
        help="score a saved model on a dataset's test split",
        description="Score MODEL.pt on the test clips of a split and print the metrics as JSON.",
    )
    e.add_argument(
        "checkpoint", type=Path, metavar="MODEL", help="a checkpoint written by train (.pt) or an exported .onnx"
    )
    options.evaluate_split_options(e)
    options.device_option(e)
    e.add_argument("--out", type=Path, help="also write metrics.json and confusion.png here")
    options.data_options(e)


def _predict(sub: SubParsers) -> None:
    """`predict`: the digits said in files."""
    p = sub.add_parser(
        "predict",
        help="the digits said in audio files (one or many per file)",
        description="Print one line per file: file, the digits heard (e.g. 4155550192), the lowest word "
        "probability. Unsure words and files with no digits are flagged on stderr; files that cannot be "
        "read are reported and the rest still answered; the exit status is 1 if any failed.",
    )
    p.usage = "%(prog)s [-h] [--json] [--single] [--device DEVICE] [MODEL] FILE [FILE ...]"
    p.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="audio files (wav, flac, ogg, ...; any rate and length), after an optional MODEL: a checkpoint (.pt: "
        "a word or string model) or an exported .onnx (default: the pretrained model in the package)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of {file, text, words: [{digit, start, end, probability, low_confidence}][, error]}",
    )
    p.add_argument(
        "--single",
        action="store_true",
        help="one word per file, the loudest (JSON: {file, digit, probability[, error][, warnings]})",
    )
    options.device_option(p)


def _listen(sub: SubParsers) -> None:
    """`listen`: live from the microphone, or a file as a stream."""
    li = sub.add_parser(
        "listen",
        help="recognise digits live from the microphone, as they are spoken",
        description="Print each word as it is recognised (digit, probability, start-end seconds), until Ctrl-C; "
        "then the whole string. Needs a microphone and PortAudio (pip install 'spoken-digits[listen]').",
    )
    li.add_argument(
        "checkpoint",
        type=Path,
        nargs="?",
        metavar="MODEL",
        help="a checkpoint (.pt) or an exported .onnx (default: the pretrained model in the package)",
    )
    li.add_argument("--input-device", help="microphone: a sounddevice index or name (default: the system's)")
    li.add_argument("--file", type=Path, help="listen to an audio file as a stream instead of the microphone")
    li.add_argument("--json", action="store_true", help="print each word as a JSON line")


def _train_strings(sub: SubParsers) -> None:
    """`train-strings`: a CTC string model from a word model."""
    s = sub.add_parser(
        "train-strings",
        help="train a string model (CTC) for touching digits, starting from a word model",
        description="Train a model that hears whole strings (several words with or without pauses), built on "
        "the fly from FSDD's official training split, starting from MODEL's front end and convolutions; "
        "writes --out/model.pt, which predict, listen and serve use like any model.",
    )
    s.add_argument(
        "word_model", type=Path, metavar="MODEL", help="a word model checkpoint (.pt) written by train --preset scratch"
    )
    s.add_argument("--out", type=Path, default=Path("runs/strings"), help="output folder (default: runs/strings)")
    s.add_argument("--epochs", type=int, default=20, help="epochs (default: 20)")
    s.add_argument("--recordings", type=int, default=1024, help="training recordings per epoch (default: 1024)")
    s.add_argument("--seed", type=int, default=0, help="seed of the recordings and augmentation (default: 0)")
    options.data_options(s, fsdd_only=True)


def _serve(sub: SubParsers) -> None:
    """`serve`: the local web page and JSON API."""
    w = sub.add_parser(
        "serve",
        help="a local web page to try a model with your microphone or files",
        description="Serve a page (record or upload a clip, see the answer and what the model heard) "
        "and a JSON API (POST /api/predict, GET /api/health, GET /api/model; docs at /docs).",
    )
    w.add_argument(
        "checkpoint",
        type=Path,
        nargs="?",
        metavar="MODEL",
        help="a checkpoint written by train (.pt) or an exported .onnx (default: the pretrained model in the package)",
    )
    options.device_option(w)
    w.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    w.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    limits.add_options(w)


def _diagnose(sub: SubParsers) -> None:
    """`diagnose`: why a model does not learn."""
    d = sub.add_parser(
        "diagnose",
        help="tell why a model does not learn: data, labels, training dynamics",
        description="Examine a pipeline (one of ours, by preset and options, or your own arrays with "
        "--data FILE.npz) or an accuracy history, and print ranked findings, most likely cause first. "
        "Exit status: 0 when nothing rises above info, 1 when a problem was found.",
    )
    options.config_options(d)
    d.add_argument(
        "--data",
        metavar="FILE.npz|DIR",
        help="your arrays: a .npz with X as (N, T, F) or (N, F, T) as fed to the model, integer y (N,), "
        "optional lengths (N,); or a dataset for our own pipeline, as train reads it (default: FSDD)",
    )
    d.add_argument("--no-download", action="store_true", help="never download FSDD; fail if no copy is found")
    options.source_options(d)
    d.add_argument(
        "--history",
        type=Path,
        metavar="FILE.json",
        help="a JSON list of per-epoch training accuracies (or Keras' history dict) to read instead",
    )
    d.add_argument("--n-train", type=int, help="with --history: the number of clips each accuracy was measured on")
    d.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    d.add_argument("--out", type=Path, metavar="DIR", help="also write DIR/diagnosis.json")


def _export(sub: SubParsers) -> None:
    """`export`: a checkpoint as one ONNX graph."""
    x = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX (waveforms in, logits out), or a model as a page that runs in the browser",
        description="Write MODEL.pt as one ONNX graph that computes the features too; batch and sample axes "
        "stay dynamic. The export is checked against torch (max |logit difference| <= 1e-4) before it is written.",
    )
    x.add_argument(
        "checkpoint",
        type=Path,
        nargs="?",
        metavar="MODEL",
        help="a checkpoint written by train (.pt); with --web also an exported .onnx (default: the packaged model)",
    )
    x.add_argument("--onnx", type=Path, metavar="OUT.onnx", help="where to write the ONNX model")
    x.add_argument(
        "--web",
        type=Path,
        metavar="DIR",
        help="write a static page that recognises digit strings in the browser (onnxruntime-web, no server) to DIR",
    )
    x.add_argument(
        "--ort-web",
        type=Path,
        metavar="DIST",
        help="with --web: onnxruntime-web's dist folder (default: installed once from npm into the cache)",
    )
    x.add_argument(
        "--package",
        action="store_true",
        help="write it as the package's pretrained model, with its card (make pretrained; default recipe, --split all)",
    )
    x.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")


def _study(sub: SubParsers) -> None:
    """`study`: a grid of runs, aggregated."""
    g = sub.add_parser(
        "study",
        help="run a grid of training runs (models x features x splits x seeds) and aggregate it",
        description="Run every cell x seed of a grid into --out (finished runs are skipped, interrupted "
        "ones resumed), then write summary.json and summary.csv: mean, sd and 95% CI per cell.",
    )
    g.add_argument("grid", nargs="?", help="a built-in grid name (see --list) or a TOML grid file")
    g.add_argument("--list", action="store_true", help="list the built-in grids and exit")
    g.add_argument("--out", type=Path, help="study folder (default: runs/study-GRID)")
    g.add_argument("--seeds", type=int, help="run seeds 0..N-1 instead of the grid's own")
    g.add_argument("--workers", type=int, default=1, help="parallel training processes (default: 1)")
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value in every cell, VALUE as JSON (e.g. train.epochs=5); repeatable",
    )
    options.data_options(g)


def _report(sub: SubParsers) -> None:
    """`report`: a study as Markdown and HTML."""
    r = sub.add_parser(
        "report",
        help="render a study as Markdown and self-contained HTML",
        description="Write report.md, report.html and their plots for a study folder.",
    )
    r.add_argument("study", type=Path, metavar="STUDY_DIR", help="a folder written by spoken-digits study")
    r.add_argument("--out", type=Path, help="where to write the report (default: the study folder)")


def _robustness(sub: SubParsers) -> None:
    """`robustness`: scores under noise, rooms, band and level."""
    b = sub.add_parser(
        "robustness",
        help="score a saved model on test clips corrupted by noise, reverberation, band and level",
        description="Score MODEL on the test clips of a split under each condition (clean; white, pink, babble "
        "and synthetic-talker babble2 noise at 20/10/5/0 dB SNR with noise before and after the word; "
        "reverberation T60 0.3/0.6/0.9 s from two room models, reverb and reverb2; "
        "telephone band; -30 dB level; 3 s padding; 1 s window), every clip corrupted the same way on every "
        "run and for every model, and write robustness.json, robustness.csv and robustness.png to --out.",
    )
    b.add_argument(
        "checkpoint", type=Path, metavar="MODEL", help="a checkpoint written by train (.pt) or an exported .onnx"
    )
    options.split_options(b, "official")
    options.device_option(b)
    b.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: robustness/ beside MODEL)")
    b.add_argument(
        "--seed", type=int, default=0, help="seed of every corruption: the same clips for every model (default: 0)"
    )
    b.add_argument(
        "--conditions",
        nargs="+",
        metavar="NAME",
        help="only these conditions: names such as clean, white-10db, reverb-0.6s, or a kind for all of its "
        "levels (white, pink, babble, babble2, reverb, reverb2, ...) (default: all)",
    )
    b.add_argument("--limit", type=int, metavar="N", help="score a seeded subset of N clips, balanced over digits")
    b.add_argument(
        "--noise-dir",
        type=Path,
        metavar="DIR",
        help="a folder of your own noise recordings (any format predict reads): adds noisedir conditions at each SNR",
    )
    b.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    options.data_options(b, fsdd_only=True)


def _cache(sub: SubParsers) -> None:
    """`cache`: list or prune the front end's clip stores."""
    c = sub.add_parser(
        "cache",
        help="list or prune the front end's clip cache",
        description="List the clip stores the front end keeps under $SPOKEN_DIGITS_CACHE/clips (default "
        "~/.cache/spoken-digits/clips), most recently used first, or remove those no run can use again: "
        "built by other front-end code, a detector or libraries since replaced, or over files changed since. "
        "A store another process is reading is never removed.",
    )
    c.add_argument("--list", action="store_true", help="list the stores (the default)")
    c.add_argument("--prune", action="store_true", help="remove the stores no run can use again, then list")
    c.add_argument(
        "--keep", type=int, metavar="N", help="with --prune: also keep no more than the N most recently used"
    )
    c.add_argument(
        "--max-size",
        metavar="SIZE",
        help="with --prune: also remove the least recently used until at most SIZE remain (e.g. 20G)",
    )


PARSERS = (
    _train,
    _evaluate,
    _predict,
    _listen,
    _train_strings,
    _serve,
    _diagnose,
    _export,
    _study,
    _report,
    _robustness,
)


def _show_warning(message: Warning | str, *_: object, **__: object) -> None:
    print(f"spoken-digits: warning: {message}", file=sys.stderr)


COMMANDS = {
    "train": commands.train,
    "evaluate": commands.evaluate,
    "predict": answering.predict,
    "listen": answering.listen,
    "train-strings": commands.train_strings,
    "serve": answering.serve,
    "diagnose": commands.diagnose,
    "export": answering.export,
    "study": commands.study,
    "report": commands.report,
    "models": commands.models,
    "robustness": commands.robustness,
    "cache": commands.cache,
}


# The train extra's top-level modules: a command that needs one names the extra instead of a traceback.
TRAIN_EXTRA = frozenset({"torch", "matplotlib", "tqdm", "markdown", "pyroomacoustics", "livekit", "onnx"})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors we expect print one line and return a non-zero status."""
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt) if _main_thread() else None
    try:
        with warnings.catch_warnings():  # restores the caller's warning display on exit
            warnings.showwarning = _show_warning
            return COMMANDS[args.command](args)
    except SpokenDigitsError as exc:
        print(f"spoken-digits: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAIN_EXTRA:
            raise
        print(
            f"spoken-digits: error: {args.command} needs {exc.name}, which this install (the lean runtime: predict, "
            "listen, serve) leaves out: pip install 'spoken-digits[train]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("spoken-digits: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends a command like Ctrl-C: temporary files are removed and saved progress kept."""
    raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
