"""`spoken-digits export --web DIR`: a static page that recognises digit strings in the browser, no server.

DIR holds the page (offline.html as index.html, recognise.js), the model and the speech detector as ONNX,
model.json (classes, temperature and every constant of the detector and the word cutting, read from the
Python modules; the steps themselves are ported by hand, and tests/test_webexport.py holds the page's answers
to Python's) and onnxruntime-web's wasm build, installed from npm at
build time (`npm install onnxruntime-web@ORT_WEB` into the cache, once) or taken from --ort-web DIST; nothing
is fetched from a CDN when the page runs. Any static host serves DIR as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

from spoken_digits import pretrained
from spoken_digits.data.fsdd import cache_dir
from spoken_digits.errors import ParameterError
from spoken_digits.frontend import endpoint
from spoken_digits.recognize import segment, words
from spoken_digits.recognize.load import load_predictor
from spoken_digits.recognize.predict import OnnxPredictor

ORT_WEB = "1.22.0"  # the onnxruntime-web release the page is built and tested with
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
DETECTOR_KEYS = ("RATE", "CHUNK", "CONTEXT", "PHASES", "SETTLE", "ENTER", "LEAVE", "MERGE_GAP", "MIN_RUN", "LEAD",
                 "TRAIL", "LEVEL_DBFS", "MAX_GAIN_DB")
SEGMENT_KEYS = ("FRAME", "MIN_WORD", "MAX_WORD", "MIN_DIP_DB", "MIN_SPACING", "CUT_WEIGHT", "DEPTH_EVEN", "FLOOR_DB",
                "FILLER_COST", "LONG_WORD", "LENGTH_WEIGHT")
NOTICE = """# What this page holds, and under which licences

- index.html, recognise.js: spoken-digits (MIT).
- detector.onnx: Silero VAD's speech detector (MIT, Silero Team; LICENSE-silero-vad).
- ort/: onnxruntime-web {ort} (MIT, Microsoft; https://github.com/microsoft/onnxruntime).
- model.onnx: {model}.
"""
MARK = "spoken-digits web export"  # in model.json: an existing DIR holding it may be replaced


def ort_web(dist: str | os.PathLike[str] | None = None) -> Path:
    """onnxruntime-web's dist folder: `dist` when given, else ORT_WEB installed from npm into the cache."""
    if dist is None:
        prefix = cache_dir() / f"onnxruntime-web-{ORT_WEB}"
        found = prefix / "node_modules" / "onnxruntime-web" / "dist"
        if not all((found / name).is_file() for name in ORT_FILES):
            npm = shutil.which("npm")
            if npm is None:
                raise ParameterError(
                    "the web page needs onnxruntime-web: install Node.js's npm (it fetches it once from the npm "
                    "registry), or give --ort-web DIR, the dist folder of an onnxruntime-web install"
                )
            prefix.mkdir(parents=True, exist_ok=True)
            done = subprocess.run(
                [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", f"onnxruntime-web@{ORT_WEB}"],
                capture_output=True,
                text=True,
            )
            if done.returncode:
                raise ParameterError(f"npm install onnxruntime-web@{ORT_WEB} failed: {done.stderr.strip()[-500:]}")
        dist = found
    dist = Path(dist)
    missing = [name for name in ORT_FILES if not (dist / name).is_file()]
    if missing:
        raise ParameterError(f"{dist}: not onnxruntime-web's dist folder (no {', '.join(missing)})")
    return dist


def page_config(predictor: OnnxPredictor, name: str) -> dict[str, Any]:
    """model.json: what the page needs of the model, and the Python constants its steps use."""
    return {
        "mark": MARK,
        "name": name,
        "classes": predictor.classes,
        "temperature": predictor.temperature,
        "filler": predictor.filler,
        "sr": predictor.audio_cfg.sr,
        "reject": words.REJECT,
        "low_confidence": words.LOW_CONFIDENCE,
        "detector": {key: getattr(endpoint, key) for key in DETECTOR_KEYS},
        "segment": {key: getattr(segment, key) for key in SEGMENT_KEYS},
    }


def export_web(out: str | os.PathLike[str], model: str | os.PathLike[str] | None = None, *,
               ort_dist: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write the page for `model` (an exported .onnx; None: the packaged model) to `out`, whole or not at all.
    Returns model.json and the download size."""
    source = pretrained.default_model() if model is None else Path(model)
    if source.suffix != ".onnx":
        raise ParameterError(f"{source}: the web page takes an ONNX model; export it first (export MODEL.pt --onnx)")
    predictor = load_predictor(source)
    assert isinstance(predictor, OnnxPredictor)
    cfg = predictor.audio_cfg
    if cfg.sr != endpoint.RATE or cfg.n_samples is not None or not cfg.vad:
        raise ParameterError(
            f"{source}: the web page runs models that hear whole words found by the speech detector at "
            f"{endpoint.RATE} Hz (the default preset); this one has sr {cfg.sr}, duration {cfg.duration}, vad {cfg.vad}"
        )
    dist = ort_web(ort_dist)
    out = Path(out)
    _recover(out)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{out}: is a file; give a folder for the page")
    if out.exists() and any(out.iterdir()) and not _is_export(out):
        raise ParameterError(f"{out}: exists and is not a web export; give a new or empty folder")
    tmp = out.parent / f".{out.name}.{os.getpid()}.tmp"
    old = out.parent / f".{out.name}.{os.getpid()}.old"
    try:
        (tmp / "ort").mkdir(parents=True)
        web = resources.files("spoken_digits.apps").joinpath("web")
        (tmp / "index.html").write_text(web.joinpath("offline.html").read_text())
        (tmp / "recognise.js").write_text(web.joinpath("recognise.js").read_text())
        shutil.copyfile(source, tmp / "model.onnx")
        (tmp / "detector.onnx").write_bytes(pretrained.detector_bytes())
        shutil.copyfile(pretrained.folder() / "LICENSE-silero-vad", tmp / "LICENSE-silero-vad")
        packaged = model is None
        if packaged:
            shutil.copyfile(pretrained.folder() / "NOTICE.md", tmp / "NOTICE-model.md")
        (tmp / "NOTICE.md").write_text(NOTICE.format(
            ort=ORT_WEB,
            model="the model packaged with spoken-digits: its weights are CC BY-SA 4.0 (trained on FSDD), its "
            "encoder layers Apache-2.0; see NOTICE-model.md" if packaged else f"{source.name}, exported by its owner",
        ))
        for name in ORT_FILES:
            shutil.copyfile(dist / name, tmp / "ort" / name)
        config = page_config(predictor, source.name)
        (tmp / "model.json").write_text(json.dumps(config, indent=2))
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():  # interrupted between the two renames: the old page comes back
            old.rename(out)
        raise
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"config": config, "bytes": size}


def _recover(out: Path) -> None:
    """Clean up after an export that was killed: its temporary folders go, and a page it had moved aside
    comes back when `out` is missing."""
    for stale in out.parent.glob(f".{out.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    for moved in sorted(out.parent.glob(f".{out.name}.*.old")):
        if not out.exists():
            moved.rename(out)
        else:
            shutil.rmtree(moved, ignore_errors=True)


def _is_export(folder: Path) -> bool:
    try:
        return json.loads((folder / "model.json").read_text()).get("mark") == MARK
    except (OSError, ValueError, AttributeError):
        return False
