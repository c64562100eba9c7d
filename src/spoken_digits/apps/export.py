"""`spoken-digits export`: a checkpoint as one ONNX graph, waveforms in, logits out.

The graph holds the features too (STFT as a strided convolution, mel, dB, cepstra, CMVN,
standardisation), so ONNX Runtime users get exactly the checkpoint's features; the run config
travels in the model's metadata for the audio steps before it (resampling, trim, length rule),
with the class names and the checkpoint's info (fold, metrics).
Batch and sample axes are dynamic. Needs the onnx extra: pip install 'spoken-digits[onnx]'.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from spoken_digits import onnxrt, pretrained
from spoken_digits.atomic import atomic_path, write_json
from spoken_digits.errors import CheckpointError, ParameterError
from spoken_digits.models import checkpoint
from spoken_digits.recognize.torchmodel import SpokenDigitClassifier

TOLERANCE = 1e-4  # largest |logit difference| between torch and ONNX Runtime accepted at export


def _requirements() -> Any:
    try:
        import onnx
        import onnxruntime  # noqa: F401  (the check below runs the graph)
    except ImportError as exc:
        raise ParameterError(
            f"ONNX export needs the onnx extra ({exc.name} is missing): pip install 'spoken-digits[onnx]'"
        ) from None
    return onnx


def export_onnx(source: str | os.PathLike[str], target: str | os.PathLike[str], *, opset: int = 17) -> dict[str, Any]:
    """Write `source` checkpoint as ONNX to `target` (atomically), check it against torch, return the check."""
    onnx = _requirements()
    ckpt = checkpoint.load(source)
    if ckpt.info.get("kind") == "strings":
        raise ParameterError(f"{source}: string models (train-strings) cannot be exported yet; they run from the .pt")
    classifier = SpokenDigitClassifier(*ckpt.build()).eval()
    classifier.featurizer.frontend.use_conv_stft()
    n = ckpt.config.audio.n_samples or ckpt.config.audio.sr  # 1 s when lengths vary
    example = (
        torch.zeros(2, n).normal_(0, 0.1, generator=torch.Generator().manual_seed(0)),
        torch.tensor([n, 3 * n // 4]),
    )
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about data-dependent shapes; the check below is the proof
        torch.onnx.export(
            classifier,
            example,
            cast(Any, buffer),  # the TorchScript exporter writes to file objects too
            input_names=["waves", "lengths"],
            output_names=["logits"],
            dynamic_axes={"waves": {0: "batch", 1: "samples"}, "lengths": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in {
        "spoken_digits_config": json.dumps(ckpt.config.to_dict()),
        "classes": json.dumps(ckpt.classes),
        "spoken_digits_info": json.dumps(ckpt.info),  # fold and metrics, for `evaluate` and `serve`
    }.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    data = model.SerializeToString()
    reference = SpokenDigitClassifier(*ckpt.build()).eval()  # torch.stft, as predict runs it
    report = compare(reference, onnxrt.session(data), ckpt.config.audio.n_samples, ckpt.config.audio.sr)
    if report["max_abs_diff"] > TOLERANCE:
        raise CheckpointError(
            f"{source}: the exported graph differs from torch by {report['max_abs_diff']:.2e} > {TOLERANCE}"
        )
    with atomic_path(target) as tmp:
        Path(tmp).write_bytes(data)
    return report


def compare(reference: SpokenDigitClassifier, session: Any, fixed: int | None, sr: int) -> dict[str, Any]:
    """Torch against ONNX Runtime on a batch size and clip lengths unlike the export example."""
    generator = torch.Generator().manual_seed(1)
    samples = fixed or 3 * sr // 2
    waves = torch.zeros(5, samples).normal_(0, 0.1, generator=generator)
    lengths = (
        torch.full((5,), samples) if fixed else torch.tensor([samples, samples // 2, samples // 3, samples, sr // 4])
    )
    with torch.no_grad():
        expected = reference(waves, lengths).numpy()
    got = session.run(None, {"waves": waves.numpy(), "lengths": lengths.numpy()})[0]
    return {"batch": 5, "samples": samples, "max_abs_diff": float(np.abs(got - expected).max())}


# What `make pretrained` promises: the default recipe, trained on every clip of FSDD.
PACKAGED_RECIPE = {"preset": "default", "split": "all", "data": "fsdd"}
CARD_METRICS = ("n_train", "n_val", "epochs_run", "val_accuracy", "calibration", "seconds", "machine")


def package_model(source: str | os.PathLike[str]) -> dict[str, Any]:
    """Export `source` as the package's pretrained model (`spoken_digits.pretrained`): the ONNX graph and its
    card (recipe, metrics, sha256), both written atomically. Refuses a checkpoint made by another recipe."""
    ckpt = checkpoint.load(source)
    on_fsdd = "(fsdd at " in str(ckpt.info.get("data", "")) and ckpt.info.get("skipped") == []
    made = {"preset": ckpt.config.preset, "split": ckpt.config.split.name, "data": "fsdd" if on_fsdd else "other"}
    if made != PACKAGED_RECIPE:
        raise ParameterError(f"{source}: made by {made}; the packaged model is {PACKAGED_RECIPE} (make pretrained)")
    try:
        metrics = json.loads((Path(source).parent / "metrics.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{source}: no readable metrics.json beside it ({exc}); train it with make pretrained"
        ) from None
    folder = pretrained.folder()
    with atomic_path(folder / pretrained.MODEL) as staged:  # checked graph + card, then both replaced together
        check = export_onnx(source, staged)
        data = staged.read_bytes()
        card = {
            "made_by": "make pretrained: spoken-digits train --split all --out runs/pretrained; "
            "spoken-digits export runs/pretrained/model.pt --package",
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "data": "FSDD (Free Spoken Digit Dataset), every clip (95% to train, 5% held out to fit the "
            "temperature): " + str(ckpt.info.get("data", "")).split(" (fsdd at ")[0],
            "classes": ckpt.classes,
            "temperature": ckpt.info.get("temperature", 1.0),
            "config": ckpt.config.to_dict(),
            "metrics": {key: metrics[key] for key in CARD_METRICS if key in metrics},
            "export_check": check,
            "licence": "weights: CC BY-SA 4.0 (trained on FSDD); encoder layers: Apache-2.0; see NOTICE.md",
        }
        write_json(folder / pretrained.CARD, card)  # a card whose file is not there yet fails its sha256: refused
    pretrained.default_model.cache_clear()
    return card
