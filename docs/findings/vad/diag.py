"""Signed boundary errors and failure reasons for a few variants (python diag.py)."""
import pickle
import sys

import numpy as np

SR = 8000
raw = pickle.load(open("/tmp/vad-study/out/raw.pkl", "rb"))
V = sys.argv[1:] or ["silero16k-norm@0.5", "silero8k-norm@0.5", "energy@9", "webrtc3-30ms-norm"]
print("signed start err (ms, + = starts late/cuts into word), signed end err (+ = ends late); fails: under-cover / over-extend / none")
for v in V:
    key = (v, "-") if v.startswith("trim") else (v, "std")
    print("==", v)
    for c, d in raw["conditions"].items():
        ss, es, under, over, none = [], [], 0, 0, 0
        for seg, (a, b) in zip(d["res"][key], d["truth"]):
            if seg is None: none += 1; continue
            s, e = seg; ss.append((s - a) / SR * 1e3); es.append((e - b) / SR * 1e3)
            ov = max(0, min(e, b) - max(s, a))
            if ov / (b - a) < 0.9: under += 1
            elif ((e - s) - ov) / SR > 0.3: over += 1
        print(f"  {c:13s} start {np.median(ss):6.0f} [{np.percentile(ss,10):5.0f},{np.percentile(ss,90):5.0f}]  end {np.median(es):6.0f} [{np.percentile(es,10):5.0f},{np.percentile(es,90):5.0f}]  under {under:3d} over {over:3d} none {none:3d}")
