"""vadlib.recommended() on pad-3s and level-40db (300 clips): must match final.md's silero16k-rms3@0.6 column."""
import sys; sys.path.insert(0, "/tmp/vad-study")
import conditions as C
import vadlib as V

test, pool = C.load_clips(); b = C.Builder(pool)
for cond in ("pad-3s", "level-40db", "white-10db"):
    hit = 0
    for c in test:
        y, a, e = b(cond, c); seg = V.recommended(y)
        if seg:
            ov = max(0, min(seg[1], e) - max(seg[0], a)); hit += ov / (e - a) >= 0.9 and ((seg[1] - seg[0]) - ov) / 8000 <= 0.3
    print(cond, hit / len(test))
