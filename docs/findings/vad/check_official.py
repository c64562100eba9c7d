"""Sanity: our raw-onnxruntime silero == the package's own OnnxWrapper (torch-based helper) per chunk.

Needs `pip install silero-vad` (no longer a dependency: its ONNX file ships in spoken_digits/pretrained)."""
import sys; sys.path.insert(0, "/tmp/vad-study"); sys.path.insert(0, "/tmp/vad-site")
import conditions as C
import numpy as np
import torch
import vadlib as V
from silero_vad import load_silero_vad

m = load_silero_vad(onnx=True)
test, pool = C.load_clips(); b = C.Builder(pool)
w = b("white-10db", test[7])[0]
for msr in (8000, 16000):
    x = w if msr == 8000 else V.soxr.resample(w, 8000, 16000, quality="HQ").astype(np.float32)
    n = 256 if msr == 8000 else 512
    x = np.pad(x, (0, -len(x) % n)); m.reset_states()
    ref = np.array([m(torch.from_numpy(x[i:i+n]), msr).item() for i in range(0, len(x), n)])
    ours = V.silero_probs_batch([w], msr)[0]
    print(msr, float(np.abs(ref - ours).max()))
