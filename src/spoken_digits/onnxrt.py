"""ONNX Runtime sessions, made one way: the detector, exported models and export's own check use it.

KleidiAI's kernels (ONNX Runtime on arm64) have returned wrong batch-1 convolutions, which the speech
encoder's graph is made of, and keep packed buffers that never shrink; `mlas.disable_kleidiai` turns
them off. The entry is ignored where the kernels do not exist (x86).
"""

from __future__ import annotations

import sys
from typing import Any

DISABLE_KLEIDIAI = "mlas.disable_kleidiai"


def session(model: str | bytes, *, threads: int | None = None) -> Any:
    """A CPU InferenceSession of `model` (a path or the serialized graph), quiet, KleidiAI off; `threads`
    intra-op threads when given. Torch's thread count is restored where torch is loaded (ONNX Runtime sets
    OpenMP's); this module never imports torch itself, so the lean runtime runs without it."""
    import onnxruntime  # imported here: loading it takes a moment

    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry(DISABLE_KLEIDIAI, "1")
    if threads is not None:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    try:
        return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    finally:
        if torch is not None and torch_threads is not None:
            torch.set_num_threads(torch_threads)
