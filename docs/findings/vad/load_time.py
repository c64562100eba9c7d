"""One-off costs: onnxruntime session creation for silero_vad.onnx, and the recommended endpointer on one 1 s clip."""
import os
import sys
import time

os.environ["OMP_NUM_THREADS"] = "1"
sys.path.insert(0, "/tmp/vad-study")
t0 = time.perf_counter(); import numpy as np; t1 = time.perf_counter()
import vadlib as V

t2 = time.perf_counter(); V.silero_session(1); t3 = time.perf_counter()
y = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.01
t4 = time.perf_counter(); V.recommended(y); t5 = time.perf_counter()
t6 = time.perf_counter(); [V.recommended(y) for _ in range(20)]; t7 = time.perf_counter()
print(f"import onnxruntime+numpy+soxr {1e3*(t1-t0):.0f} ms; session create {1e3*(t3-t2):.0f} ms; first call 1 s clip {1e3*(t5-t4):.1f} ms; warm call {1e3*(t7-t6)/20:.1f} ms")
