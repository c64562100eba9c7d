"""Under-cover failures by digit/speaker and which side is missing (python diag2.py VARIANT COND)."""
import pickle
import sys
from collections import Counter

SR = 8000
raw = pickle.load(open("/tmp/vad-study/out/raw.pkl", "rb"))
v, c = sys.argv[1], sys.argv[2]
d = raw["conditions"][c]; key = (v, "-") if v.startswith("trim") else (v, "std")
dig, spk, side = Counter(), Counter(), Counter()
for name, seg, (a, b) in zip(raw["clips"], d["res"][key], d["truth"]):
    if seg is None: continue
    s, e = seg; ov = max(0, min(e, b) - max(s, a))
    if ov / (b - a) < 0.9:
        dig[name[0]] += 1; spk[name.split("_")[1]] += 1
        side["start" if (s - a) > (b - e) else "end"] += 1
print(v, c, "digits", sorted(dig.items()), "speakers", dict(spk), "side", dict(side))
