"""The subcommands that answer with a model (predict, listen, serve) or package one (export). The model is
optional: without one the packaged model answers. Torch is imported only for a checkpoint (.pt), a GPU, or
an ONNX export, so these commands run in the lean install.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spoken_digits.errors import ParameterError

MODEL_SUFFIXES = (".pt", ".onnx")


def _model_and_files(paths: list[Path]) -> tuple[Path | None, list[Path]]:
    """predict's positionals: an optional model (.pt, .onnx) first, then the audio files."""
    if paths and paths[0].suffix in MODEL_SUFFIXES:
        if len(paths) == 1:
            raise ParameterError(f"no audio files after the model {paths[0]}: spoken-digits predict [MODEL] FILE...")
        return paths[0], paths[1:]
    return None, paths


def _load(model: Path | None, device: str = "cpu") -> Any:
    """The predictor for `model` (None: the packaged model); torch is imported only for a .pt or a GPU."""
    from spoken_digits.recognize.load import load_predictor

    if device != "cpu" and model is not None and model.suffix == ".pt":  # ONNX refuses a GPU itself, torch-free
        from spoken_digits.device import check_device

        device = str(check_device(device))
    return load_predictor(model, device=device)


def predict(args: argparse.Namespace) -> int:
    model, files = _model_and_files(args.files)
    predictor = _load(model, args.device)
    if args.single:  # one word per file (the loudest), with every class's probability under --json
        return _answers(predictor.predict_files(files), args.json, lambda r: f"{r.digit}\t{r.probability:.4f}")
    from spoken_digits.recognize.files import transcribe_files

    def line(r: Any) -> str:
        lowest = min((w.probability for w in r.transcript.words), default=None)
        return f"{r.transcript.text}\t{'' if lowest is None else f'{lowest:.4f}'}"

    return _answers(transcribe_files(predictor, files), args.json, line)


def _answers(results: list[Any], as_json: bool, line: Callable[[Any], str]) -> int:
    """Print predict's answers (JSON, or `file<TAB>line(answer)`), warnings and errors on stderr;
    the exit status is 1 when any file failed."""
    if as_json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    for r in results:
        for note in r.warnings:
            print(f"spoken-digits: warning: {r.file}: {note}", file=sys.stderr)
        if r.error is not None:
            print(f"spoken-digits: error: {r.error}", file=sys.stderr)
        elif not as_json:
            print(f"{r.file}\t{line(r)}")
    return 1 if any(r.error for r in results) else 0


def listen(args: argparse.Namespace) -> int:
    from spoken_digits.recognize import microphone
    from spoken_digits.recognize.words import join_labels

    predictor = _load(args.checkpoint)
    if args.file is not None:
        words = microphone.listen_file(predictor, args.file, json_lines=args.json)
    else:
        words = microphone.listen_microphone(predictor, device=args.input_device, json_lines=args.json)
    if not args.json:
        print(f"heard: {join_labels([w.label for w in words]) or '(nothing)'}")
    return 0


def serve(args: argparse.Namespace) -> int:
    try:
        from spoken_digits.apps.serve import serve
    except ImportError as exc:
        raise ParameterError(
            f"serve needs the web extra ({exc.name} is missing): pip install 'spoken-digits[web]'"
        ) from None
    predictor = _load(args.checkpoint, args.device)  # a bad file fails here, in one line, before the server starts
    from spoken_digits.apps.limits import StreamLimits

    serve(predictor, host=args.host, port=args.port, limits=StreamLimits.from_args(args))
    return 0


def export(args: argparse.Namespace) -> int:
    if sum((args.onnx is not None, args.package, args.web is not None)) != 1:
        raise ParameterError("export needs exactly one of --onnx OUT.onnx, --package and --web DIR")
    if args.ort_web is not None and args.web is None:
        raise ParameterError("--ort-web is for --web only")
    if args.web is not None:
        return _export_web(args)
    if args.checkpoint is None:
        raise ParameterError("export --onnx and --package need the checkpoint (MODEL.pt) to export")
    from spoken_digits.apps.export import export_onnx, package_model  # torch

    if args.package:
        card = package_model(args.checkpoint)
        print(f"wrote the packaged model ({card['bytes'] / 1e6:.1f} MB, sha256 {card['sha256'][:12]}...) and its card")
        return 0
    check = export_onnx(args.checkpoint, args.onnx, opset=args.opset)
    print(
        f"wrote {args.onnx}; checked against torch on {check['batch']} clips of {check['samples']} samples: "
        f"max |logit difference| {check['max_abs_diff']:.1e}"
    )
    return 0


def _export_web(args: argparse.Namespace) -> int:
    from spoken_digits.apps.webexport import export_web

    model = args.checkpoint
    with contextlib.ExitStack() as stack:
        if model is not None and model.suffix == ".pt":  # torch exports it to a temporary .onnx first
            from spoken_digits.apps.export import export_onnx

            model = Path(stack.enter_context(tempfile.TemporaryDirectory())) / f"{model.stem}.onnx"
            export_onnx(args.checkpoint, model)
        made = export_web(args.web, model, ort_dist=args.ort_web)
    print(
        f"wrote {args.web} ({made['bytes'] / 1e6:.1f} MB): serve it with any static web server, e.g. "
        f"python -m http.server -d {args.web}, and open it in a browser"
    )
    return 0
