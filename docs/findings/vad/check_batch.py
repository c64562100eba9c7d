"""Sanity: silero batched (zero-padded at the end) == one clip at a time; and the reference OnnxWrapper-style loop."""
import sys; sys.path.insert(0, "/tmp/vad-study")
import conditions as C
import numpy as np
import vadlib as V

test, pool = C.load_clips(); b = C.Builder(pool)
ws = [b("pink-10db", c)[0] for c in test[:6]]
for msr in (8000, 16000):
    pb = V.silero_probs_batch(ws, msr)
    ps = [V.silero_probs_batch([w], msr)[0] for w in ws]
    print(msr, max(float(np.abs(x - y).max()) for x, y in zip(pb, ps)), [len(p) for p in pb])
