// spoken-digits in the browser: digit strings from 16 kHz audio with onnxruntime-web, no server.
// The same steps as the Python runtime's `transcribe` (spoken_digits/frontend/endpoint.py for the speech
// detector, spoken_digits/recognize/segment.py for cutting stretches into words), ported by hand; their
// constants come from model.json, which `spoken-digits export --web` writes from the Python modules, and
// tests/test_webexport.py holds the page's answers to Python's on real recordings.
/* global ort */

const fround = Math.fround;

export class Recogniser {
  constructor(config, detector, model) {
    this.config = config;
    this.detector = detector;
    this.model = model;
    this.d = config.detector;
    this.s = config.segment;
  }

  static async load(base = "./") {
    ort.env.wasm.numThreads = 1; // no cross-origin isolation needed; one thread is the Python runtime's too
    ort.env.wasm.wasmPaths = new URL(base + "ort/", location.href).href; // absolute: ort resolves its own way
    const response = await fetch(base + "model.json");
    if (!response.ok) throw new Error(`model.json: ${response.status} ${response.statusText}`);
    const config = await response.json();
    const options = { executionProviders: ["wasm"] };
    const detector = await ort.InferenceSession.create(base + "detector.onnx", options);
    const model = await ort.InferenceSession.create(base + "model.onnx", options);
    return new Recogniser(config, detector, model);
  }

  // ---- the speech detector (endpoint.py) ----

  // y scaled so its 3rd-loudest CHUNK frame is at LEVEL_DBFS, the gain capped (normalise_level).
  normaliseLevel(y) {
    const { CHUNK, LEVEL_DBFS, MAX_GAIN_DB } = this.d;
    const n = Math.floor(y.length / CHUNK);
    if (n === 0) return y;
    const frames = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      let sum = 0;
      for (let i = k * CHUNK; i < (k + 1) * CHUNK; i++) sum += y[i] * y[i];
      frames[k] = Math.sqrt(sum / CHUNK);
    }
    frames.sort();
    const reference = frames[n - Math.min(3, n)];
    if (reference < 1e-7) return y;
    const gain = fround(Math.min(10 ** (LEVEL_DBFS / 20) / reference, 10 ** (MAX_GAIN_DB / 20)));
    return Float32Array.from(y, (v) => v * gain);
  }

  // Speech probability every STEP samples: the detector at PHASES alignments of its CHUNK steps, each
  // moment's highest (SpeechDetector.probabilities with PhasedRun, one stream, the whole clip at once).
  async probabilities(y) {
    const { CHUNK, CONTEXT, PHASES, SETTLE, RATE } = this.d;
    const STEP = CHUNK / PHASES;
    const heard = this.normaliseLevel(y);
    const lead = SETTLE + CONTEXT + (PHASES - 1) * STEP;
    const audio = new Float32Array(lead + heard.length + SETTLE);
    audio.set(heard, lead);
    const audioStart = -lead;
    const end = audioStart + audio.length;
    let state = new ort.Tensor("float32", new Float32Array(2 * PHASES * 128), [2, PHASES, 128]);
    const rate = new ort.Tensor("int64", BigInt64Array.from([BigInt(RATE)]), []);
    const total = Math.ceil(heard.length / STEP);
    const votes = new Float32Array(total);
    const width = CONTEXT + CHUNK;
    for (let next = -SETTLE; next + CHUNK <= end; next += CHUNK) {
      const windows = new Float32Array(PHASES * width);
      for (let j = 0; j < PHASES; j++) {
        const lo = next - j * STEP - CONTEXT - audioStart;
        windows.set(audio.subarray(lo, lo + width), j * width);
      }
      const out = await this.detector.run({
        input: new ort.Tensor("float32", windows, [PHASES, width]),
        state,
        sr: rate,
      });
      state = out.stateN;
      const p = out.output.data;
      for (let j = 0; j < PHASES; j++) {
        const first = (next - j * STEP) / STEP; // phase j's step covers PHASES sub-steps from here
        for (let k = Math.max(first, 0); k < Math.min(first + PHASES, total); k++) {
          if (p[j] > votes[k]) votes[k] = p[j];
        }
      }
    }
    return votes;
  }

  // Speech [start, end) in samples at sr: hysteresis runs joined over short gaps, clicks dropped, widened
  // by the margins, none reaching back into the one before (endpoint.stretches).
  stretches(probs, sr, n) {
    const { ENTER, LEAVE, MERGE_GAP, MIN_RUN, LEAD, TRAIL, RATE, CHUNK, PHASES } = this.d;
    const STEP = CHUNK / PHASES;
    const enter = fround(ENTER), leave = fround(LEAVE); // numpy compares float32 probabilities in float32
    const runs = [];
    let on = false, start = 0;
    for (let i = 0; i < probs.length; i++) {
      if (!on && probs[i] >= enter) { start = i; on = true; }
      else if (on && probs[i] < leave) { runs.push([start, i]); on = false; }
    }
    if (on) runs.push([start, probs.length]);
    const gap = (MERGE_GAP * RATE) / STEP;
    const merged = [];
    for (const [a, b] of runs) {
      if (merged.length && a - merged[merged.length - 1][1] < gap) merged[merged.length - 1][1] = b;
      else merged.push([a, b]);
    }
    const step = (STEP * sr) / RATE;
    const found = [];
    for (const [a, b] of merged) {
      const s = pyRound(a * step), e = Math.min(pyRound(b * step), n);
      if (e - s >= MIN_RUN * sr) found.push([s, e]);
    }
    const lead = pyRound(LEAD * sr), trail = pyRound(TRAIL * sr);
    const out = [];
    for (const [a, b] of found) {
      let s = a - lead;
      if (out.length) s = Math.max(s, out[out.length - 1][1]);
      out.push([s, b + trail]);
    }
    return out;
  }

  // ---- cutting stretches into words (segment.py) ----

  levelDb(y, sr) {
    const f = Math.max(1, pyRound(this.s.FRAME * sr));
    const n = Math.floor(y.length / f);
    const power = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      let sum = 0;
      for (let i = k * f; i < (k + 1) * f; i++) sum += y[i] * y[i];
      power[k] = sum / f;
    }
    const level = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const around = (k > 0 ? power[k - 1] : 0) / 3 + power[k] / 3 + (k + 1 < n ? power[k + 1] : 0) / 3;
      level[k] = 10 * Math.log10(around + 1e-10);
    }
    return level;
  }

  noiseFloor(level) {
    if (!level.length) return this.s.FLOOR_DB;
    const sorted = Float64Array.from(level).sort();
    const at = 0.1 * (sorted.length - 1), lo = Math.floor(at), t = at - lo;
    const hi = Math.min(lo + 1, sorted.length - 1);
    const value = t >= 0.5 ? sorted[hi] - (sorted[hi] - sorted[lo]) * (1 - t) : sorted[lo] + (sorted[hi] - sorted[lo]) * t;
    return Math.max(value, this.s.FLOOR_DB);
  }

  cutCandidates(level, start, end, floor) {
    const { MAX_WORD, MIN_SPACING, FRAME, MIN_DIP_DB, MIN_WORD } = this.s;
    const reach = pyRound(MAX_WORD / FRAME), spacing = Math.max(1, pyRound(MIN_SPACING / FRAME));
    const lo = Math.max(start + 1, 1), hi = Math.min(end - 1, level.length - 1);
    const dips = [];
    const peak = (a, b) => { let m = -Infinity; for (let k = a; k < b; k++) m = Math.max(m, level[k]); return m; };
    for (let i = lo; i < hi; i++) {
      if (level[i] <= level[i - 1] && level[i] <= level[i + 1]) {
        const left = peak(Math.max(start, i - reach), i), right = peak(i + 1, Math.min(end, i + reach));
        const depth = Math.min(left, right) - level[i];
        if (depth >= MIN_DIP_DB) dips.push([Math.min(depth / Math.max(Math.min(left, right) - floor, MIN_DIP_DB), 1.0), i]);
      }
    }
    dips.sort((x, y) => y[0] - x[0] || y[1] - x[1]); // deepest first, as Python's sorted(reverse=True)
    const kept = [];
    for (const [share, i] of dips) {
      if (kept.every(([k]) => Math.abs(i - k) >= spacing) && Math.min(i - start, end - i) * FRAME >= MIN_WORD) kept.push([i, share]);
    }
    return kept.sort((x, y) => x[0] - y[0]);
  }

  segmentations(bounds, sr) {
    const { MIN_WORD, MAX_WORD } = this.s;
    const pairs = [];
    for (let i = 0; i < bounds.length - 1; i++) {
      for (let j = i + 1; j < bounds.length; j++) {
        const seconds = (bounds[j] - bounds[i]) / sr;
        if (j === i + 1 || (MIN_WORD <= seconds && seconds <= MAX_WORD)) pairs.push([i, j]);
        if (seconds > MAX_WORD) break;
      }
    }
    return pairs;
  }

  // Class probabilities of each piece (the model's temperature applied), one batch.
  async modelProbabilities(pieces) {
    if (!pieces.length) return [];
    const longest = Math.max(...pieces.map((x) => x.length));
    const waves = new Float32Array(pieces.length * longest);
    pieces.forEach((x, k) => waves.set(x, k * longest));
    const lengths = BigInt64Array.from(pieces.map((x) => BigInt(x.length)));
    const out = await this.model.run({
      waves: new ort.Tensor("float32", waves, [pieces.length, longest]),
      lengths: new ort.Tensor("int64", lengths, [pieces.length]),
    });
    const logits = out.logits.data, c = this.config.classes.length, t = fround(this.config.temperature);
    const rows = [];
    for (let k = 0; k < pieces.length; k++) {
      const z = Array.from(logits.subarray(k * c, (k + 1) * c), (v) => fround(v / t));
      const top = Math.max(...z);
      const e = z.map((v) => fround(Math.exp(v - top)));
      const sum = e.reduce((a, b) => a + b, 0);
      rows.push(e.map((v) => fround(v / sum)));
    }
    return rows;
  }

  bestCuts(depths, pairs, scores, seconds, filler) {
    const { CUT_WEIGHT, DEPTH_EVEN, FILLER_COST, LONG_WORD, LENGTH_WEIGHT } = this.s;
    const best = new Array(depths.length).fill(-Infinity), back = new Array(depths.length).fill(null);
    best[0] = 0;
    pairs.forEach(([i, j], k) => {
      const cut = j < depths.length - 1 ? CUT_WEIGHT * (depths[j] - DEPTH_EVEN) : 0;
      const row = scores[k], top = argmax(row);
      const pieceCost = filler !== null && top === filler ? Math.log(FILLER_COST) : 0;
      const tooLong = LENGTH_WEIGHT * Math.max(seconds[k] - LONG_WORD, 0);
      const total = best[i] + Math.log(Math.max(row[top], 1e-9)) + pieceCost + cut - tooLong;
      if (total > best[j]) { best[j] = total; back[j] = [i, k]; }
    });
    const chosen = [];
    for (let j = depths.length - 1; j > 0;) {
      const [i, k] = back[j];
      chosen.push([i, j, scores[k]]);
      j = i;
    }
    return chosen.reverse();
  }

  // The digits in mono audio at the model's rate: {text, words: [{digit, start, end, probability}], rejected}.
  async transcribe(y, offset = 0) {
    const sr = this.config.sr, f = Math.max(1, pyRound(this.s.FRAME * sr));
    const spans = this.stretches(await this.probabilities(y), sr, y.length);
    const level = this.levelDb(y, sr), floor = this.noiseFloor(level);
    const plan = [], pieces = [];
    for (const [a, b] of spans) {
      const cuts = this.cutCandidates(level, Math.floor(Math.max(a, 0) / f), Math.floor(Math.min(b, y.length) / f), floor);
      const bounds = [a, ...cuts.map(([c]) => c * f), b], depths = [1.0, ...cuts.map(([, d]) => d), 1.0];
      const pairs = this.segmentations(bounds, sr);
      plan.push([bounds, depths, pairs, pieces.length]);
      for (const [i, j] of pairs) pieces.push(piece(y, bounds[i], bounds[j]));
    }
    const scores = await this.modelProbabilities(pieces);
    const filler = this.config.filler, words = [];
    let rejected = 0;
    for (const [bounds, depths, pairs, first] of plan) {
      const seconds = pairs.map(([i, j]) => (bounds[j] - bounds[i]) / sr);
      for (const [i, j, row] of this.bestCuts(depths, pairs, scores.slice(first, first + pairs.length), seconds, filler)) {
        const top = argmax(row);
        if (top === filler || (filler === null && row[top] < fround(this.config.reject))) { rejected++; continue; }
        words.push({
          digit: this.config.classes[top],
          start: offset + Math.max(bounds[i], 0) / sr,
          end: offset + Math.min(bounds[j], y.length) / sr,
          probability: row[top],
        });
      }
    }
    const labels = words.map((w) => w.digit);
    const text = labels.every((l) => l.length === 1) ? labels.join("") : labels.join(" ");
    return { text, words, rejected };
  }
}

function argmax(row) {
  let best = 0;
  for (let k = 1; k < row.length; k++) if (row[k] > row[best]) best = k;
  return best;
}

// Python's round(): halves to even.
function pyRound(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// y[a:b], with silence where [a, b) reaches past the recording (words.piece).
function piece(y, a, b) {
  const out = new Float32Array(b - a);
  const lo = Math.max(a, 0), hi = Math.max(Math.min(b, y.length), 0);
  if (hi > lo) out.set(y.subarray(lo, hi), lo - a);
  return out;
}
