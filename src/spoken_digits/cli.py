"""The `spoken-digits` command: argument parsing only; every command calls one library function."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from spoken_digits.config import PRESETS, RunConfig, Scale, SplitConfig, SplitName, preset
from spoken_digits.errors import ParameterError, SpokenDigitsError
from spoken_digits.models import MODELS


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", metavar="DIR", help="FSDD folder (or its recordings/); default: $FSDD_ROOT, then the user cache"
    )
    p.add_argument("--no-download", action="store_true", help="never download FSDD; fail if no copy is found")


def _split_options(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument(
        "--split",
        choices=[s.value for s in SplitName],
        default=default,
        help="official: takes 0-4 test; random: stratified 10%% test; loso: leave one speaker "
        "out (all six folds); all: train on everything, no test set"
        + (f" (default: the preset's, {default})" if default is None else f" (default: {default})"),
    )
    p.add_argument("--speaker", help="with --split loso: hold out only this speaker")


def _config_options(p: argparse.ArgumentParser) -> None:
    """Options that shape a run's config (shared by train and diagnose)."""
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="default: the seed's pipeline done right (log-mel dB, standardised); seed: the "
        "seed's pipeline exactly (raw mel power, no standardisation); robust: for voices the model never "
        "heard (cepstra with per-clip normalisation, speed perturbation, conv1d)",
    )
    p.add_argument("--model", help=f"registered model: {', '.join(MODELS)} (default: the preset's, seed_lstm)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model hyper-parameter, VALUE parsed as JSON (e.g. hidden=256); repeatable",
    )
    _split_options(p, None)
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: 32)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default: 1e-3)")
    p.add_argument("--seed", type=int, help="random seed for splits, initialisation and batches (default: 0)")
    p.add_argument(
        "--duration",
        type=float,
        help="seconds to pad/trim every clip to; 0 keeps each clip's true length (default: 0.5, the seed's)",
    )
    p.add_argument(
        "--trim-db",
        type=float,
        help="trim leading/trailing audio quieter than this many dB below the peak; 0 = no trimming "
        "(default: the preset's: 40 for default, none for seed)",
    )
    p.add_argument("--scale", choices=[s.value for s in Scale], help="mel power as is, or dB per clip")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="spoken-digits",
        description="Recognise spoken digits from mel spectrograms: train, evaluate and use models on FSDD.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train and evaluate a model on FSDD",
        description="Train a model on "
        "FSDD and write metrics.json, model.pt, config.json, log.csv, confusion.png and "
        "curves.png to --out.",
    )
    _config_options(t)
    t.add_argument("--epochs", type=int, help="maximum epochs (default: the preset's, 40)")
    t.add_argument(
        "--patience",
        type=int,
        help="stop after this many epochs without a better validation score; 0 = never (default: 10; seed preset: 0)",
    )
    t.add_argument("--device", help="torch device, e.g. cpu or cuda (default: cpu)")
    t.add_argument("--out", type=Path, help="output folder (default: runs/PRESET-MODEL-SPLIT-sSEED)")
    t.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue the interrupted run in DIR with the config it "
        "started with (takes no other training option); ends with the metrics of an uninterrupted run",
    )
    _data_options(t)

    e = sub.add_parser(
        "evaluate",
        help="score a saved model on an FSDD split",
        description="Score MODEL.pt on the test clips of a split and print the metrics as JSON.",
    )
    e.add_argument("checkpoint", type=Path, metavar="MODEL.pt", help="a checkpoint written by train")
    _split_options(e, "official")
    e.add_argument("--out", type=Path, help="also write metrics.json and confusion.png here")
    _data_options(e)

    p = sub.add_parser(
        "predict",
        help="label audio files with a saved model",
        description="Print one line per file: file, digit, probability. Files that cannot be "
        "read are reported and the rest still answered; the exit status is 1 if any failed.",
    )
    p.add_argument(
        "checkpoint", type=Path, metavar="MODEL", help="a checkpoint written by train (.pt) or an exported .onnx"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (wav, flac, ogg, ...; any rate)")
    p.add_argument(
        "--json", action="store_true", help="print a JSON list of {file, digit, probability[, error][, warnings]}"
    )

    w = sub.add_parser(
        "serve",
        help="a local web page to try a model with your microphone or files",
        description="Serve a page (record or upload a clip, see the answer and what the model heard) "
        "and a JSON API (POST /api/predict, GET /api/health, GET /api/model; docs at /docs).",
    )
    w.add_argument("checkpoint", type=Path, metavar="MODEL.pt", help="a checkpoint written by train")
    w.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    w.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")

    d = sub.add_parser(
        "diagnose",
        help="tell why a model does not learn: data, labels, training dynamics",
        description="Examine a pipeline (one of ours, by preset and options, or your own arrays with "
        "--data FILE.npz) or an accuracy history, and print ranked findings, most likely cause first. "
        "Exit status: 0 when nothing rises above info, 1 when a problem was found.",
    )
    _config_options(d)
    d.add_argument(
        "--data",
        metavar="FILE.npz|DIR",
        help="your arrays: a .npz with X as (N, T, F) or (N, F, T) as fed to the model, integer y (N,), "
        "optional lengths (N,); or an FSDD folder for our own pipeline (default: $FSDD_ROOT, then the cache)",
    )
    d.add_argument("--no-download", action="store_true", help="never download FSDD; fail if no copy is found")
    d.add_argument(
        "--history",
        type=Path,
        metavar="FILE.json",
        help="a JSON list of per-epoch training accuracies (or Keras' history dict) to read instead",
    )
    d.add_argument("--n-train", type=int, help="with --history: the number of clips each accuracy was measured on")
    d.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    d.add_argument("--out", type=Path, metavar="DIR", help="also write DIR/diagnosis.json")

    x = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX (waveforms in, logits out)",
        description="Write MODEL.pt as one ONNX graph that computes the features too; batch and sample axes "
        "stay dynamic. The export is checked against torch (max |logit difference| <= 1e-4) before it is written.",
    )
    x.add_argument("checkpoint", type=Path, metavar="MODEL.pt", help="a checkpoint written by train")
    x.add_argument("--onnx", type=Path, required=True, metavar="OUT.onnx", help="where to write the ONNX model")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")

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
    _data_options(g)

    r = sub.add_parser(
        "report",
        help="render a study as Markdown and self-contained HTML",
        description="Write report.md, report.html and their plots for a study folder.",
    )
    r.add_argument("study", type=Path, metavar="STUDY_DIR", help="a folder written by spoken-digits study")
    r.add_argument("--out", type=Path, help="where to write the report (default: the study folder)")

    sub.add_parser("models", help="list the registered models", description="List the registered models.")
    return parser


def _run_config(args: argparse.Namespace) -> RunConfig:
    """The preset with every option the user gave applied on top."""
    cfg = preset(args.preset or "default")
    params = dict(cfg.model.params) | _key_values(args.param, "--param")
    train = {
        k: v
        for k, v in {
            "epochs": getattr(args, "epochs", None),
            "batch_size": args.batch_size,
            "lr": args.lr,
            "patience": getattr(args, "patience", None),
            "seed": args.seed,
            "device": getattr(args, "device", None),
        }.items()
        if v is not None
    }
    audio: dict[str, Any] = {} if args.duration is None else {"duration": args.duration or None}
    if args.trim_db is not None:
        audio["trim_db"] = args.trim_db or None
    return dataclasses.replace(
        cfg,
        audio=dataclasses.replace(cfg.audio, **audio),
        features=dataclasses.replace(cfg.features, **({"scale": args.scale} if args.scale else {})),
        model=dataclasses.replace(cfg.model, name=args.model or cfg.model.name, params=params),
        train=dataclasses.replace(cfg.train, **train),
        split=SplitConfig(name=args.split or cfg.split.name, speaker=args.speaker),
    )


RUN_OPTIONS = {"command", "resume", "data", "no_download"}  # every other train option shapes the config


def _train(args: argparse.Namespace) -> int:
    from spoken_digits.experiment import headline, resume_run, train_run
    from spoken_digits.models import create_model
    from spoken_digits.train import check_device

    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    if args.resume is not None:
        given = [
            f"--{k.replace('_', '-')}" for k, v in vars(args).items() if k not in RUN_OPTIONS and v not in (None, [])
        ]
        if given:
            raise ParameterError(f"--resume continues with the run's own config.json; drop {', '.join(given)}")
        out = args.resume
        run = lambda: resume_run(out, data=args.data, download=not args.no_download, say=say)  # noqa: E731
    else:
        cfg = _run_config(args)
        create_model(cfg.model.name, n_features=cfg.n_features, n_classes=10, **cfg.model.params)  # fail fast
        check_device(cfg.train.device)
        out = args.out or Path("runs") / f"{cfg.preset}-{cfg.model.name}-{cfg.split.name.value}-s{cfg.train.seed}"
        run = lambda: train_run(cfg, out, data=args.data, download=not args.no_download, say=say)  # noqa: E731
    try:
        with _distributed(args.device or "cpu"):
            metrics = run()
    except KeyboardInterrupt:
        say(f"spoken-digits: interrupted; progress is saved, continue with: spoken-digits train --resume {out}")
        return 130
    result = headline(metrics["test_accuracy"], metrics.get("val_accuracy"))
    if "folds" in metrics:
        result += " (mean of folds: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics["folds"].items()) + ")"
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every rank gets here; one reports
        print(f"{result}; {metrics['seconds']:.1f} s; wrote {out}/")
    return 0


@contextlib.contextmanager
def _distributed(device: str) -> Iterator[None]:
    """Under torchrun (WORLD_SIZE > 1): one process group for the run, gloo on CPU, nccl on GPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield
        return
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        import torch

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _evaluate(args: argparse.Namespace) -> int:
    from spoken_digits.experiment import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        args.checkpoint,
        SplitConfig(name=args.split, speaker=args.speaker),
        data=args.data,
        download=not args.no_download,
        out=args.out,
    )
    print(json.dumps({k: v for k, v in metrics.items() if k != "confusion"}, indent=2))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from spoken_digits.predict import load_predictor

    results = load_predictor(args.checkpoint).predict_files(args.files)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    for r in results:
        for note in r.warnings:
            print(f"spoken-digits: warning: {r.file}: {note}", file=sys.stderr)
        if r.error is not None:
            print(f"spoken-digits: error: {r.error}", file=sys.stderr)
        elif not args.json:
            print(f"{r.file}\t{r.digit}\t{r.probability:.4f}")
    return 1 if any(r.error for r in results) else 0


def _serve(args: argparse.Namespace) -> int:
    try:
        from spoken_digits.serve import serve
    except ImportError as exc:
        raise ParameterError(
            f"serve needs the web extra ({exc.name} is missing): pip install 'spoken-digits[web]'"
        ) from None
    from spoken_digits.predict import Predictor

    predictor = Predictor.from_file(args.checkpoint)  # a bad file fails here, in one line, before the server starts
    serve(predictor, host=args.host, port=args.port)
    return 0


def _diagnose(args: argparse.Namespace) -> int:
    from spoken_digits import diagnose
    from spoken_digits.atomic import write_json

    if args.history is not None:
        if args.n_train is None:
            raise ParameterError("--history needs --n-train N, the number of clips each accuracy counts")
        result = diagnose.diagnose_history(_read_history(args.history), args.n_train)
    elif args.data is not None and Path(args.data).suffix == ".npz":
        cfg = _run_config(args)
        x, y, lengths = diagnose.load_arrays(args.data)
        result = diagnose.diagnose_arrays(
            x,
            y,
            lengths=lengths,
            model=_array_model(cfg, x.shape[-1]) if args.model else None,
            lr=cfg.train.lr,
            batch_size=cfg.train.batch_size,
            seed=cfg.train.seed,
        )
    else:
        result = diagnose.diagnose_run(_run_config(args), data=args.data, download=not args.no_download)
    if args.out is not None:
        write_json(args.out / "diagnosis.json", result.to_dict())
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.render())
    return 0 if result.healthy else 1


def _array_model(cfg: RunConfig, width: int) -> Any:
    """A factory for the config's registered model, sized for arrays `width` features wide."""
    from spoken_digits.models import create_model

    def factory() -> Any:
        return create_model(cfg.model.name, n_features=width, n_classes=10, **cfg.model.params)

    factory()  # a bad name or hyper-parameter fails here, before any check runs
    return factory


def _read_history(path: Path) -> list[float]:
    """Accuracies from a JSON list, or from a Keras-style history dict."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ParameterError(f"{path}: cannot read a JSON history ({exc})") from None
    if isinstance(data, dict):
        key = next((k for k in ("accuracy", "sparse_categorical_accuracy", "acc", "train_accuracy") if k in data), None)
        if key is None:
            raise ParameterError(f"{path}: no accuracy list in the keys {sorted(data)}")
        data = data[key]
    if not isinstance(data, list) or not all(isinstance(v, (int, float)) for v in data):
        raise ParameterError(f"{path}: expected a list of accuracies (numbers in [0, 1])")
    return [float(v) for v in data]


def _export(args: argparse.Namespace) -> int:
    from spoken_digits.export import export_onnx

    check = export_onnx(args.checkpoint, args.onnx, opset=args.opset)
    print(
        f"wrote {args.onnx}; checked against torch on {check['batch']} clips of {check['samples']} samples: "
        f"max |logit difference| {check['max_abs_diff']:.1e}"
    )
    return 0


def _study(args: argparse.Namespace) -> int:
    from spoken_digits import study

    if args.list:
        for name, grid in study.BUILTIN.items():
            print(f"{name:10s} {len(grid.runs()):4d} runs  {grid.description}")
        return 0
    if args.grid is None:
        raise ParameterError("name a grid (spoken-digits study --list shows the built-in ones) or a TOML file")
    grid = study.with_overrides(study.load_grid(args.grid), _key_values(args.set, "--set"), args.seeds)
    out = args.out or Path("runs") / f"study-{grid.name}"
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    summary = study.run_study(grid, out, data=args.data, download=not args.no_download, workers=args.workers, say=say)
    for row in summary["cells"]:
        print(f"{row['cell']:50s} {row['mean']:.4f} ± {row['ci95']:.4f} (95% CI, {row['n_seeds']} seeds)")
    print(f"wrote {out}/summary.json; render it with: spoken-digits report {out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from spoken_digits.studyreport import render

    print(f"wrote {render(args.study, args.out)} and report.html")
    return 0


def _key_values(items: list[str], option: str) -> dict[str, Any]:
    """KEY=VALUE pairs with VALUE parsed as JSON where it parses (else kept as a string)."""
    pairs: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParameterError(f"{option} expects KEY=VALUE, got {item!r}")
        try:
            pairs[key] = json.loads(value)
        except json.JSONDecodeError:
            pairs[key] = value
    return pairs


def _models(args: argparse.Namespace) -> int:
    for name, (_, description) in MODELS.items():
        print(f"{name:10s} {description}")
    return 0


def _show_warning(message: Warning | str, *_: object, **__: object) -> None:
    print(f"spoken-digits: warning: {message}", file=sys.stderr)


COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "serve": _serve,
    "diagnose": _diagnose,
    "export": _export,
    "study": _study,
    "report": _report,
    "models": _models,
}


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
