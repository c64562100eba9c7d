"""The in-browser page (export --web) in headless Chromium: same answers as the Python runtime, speed, size.

    python -m benchmarks.browser [--files 300] [--out docs/findings/runtime] [--listen 20]

- Answers: every official test clip (resampled to 16 kHz once, by soxr) goes to the page's `transcribe` and to
  the Python runtime's (the packaged model through onnxruntime); the digit strings must be the same.
- Speed: the page's own time per clip (performance.now around `transcribe`, warm), the cold load (navigation
  to "ready": fetching the files, compiling the wasm, creating both sessions), and, from Chromium's fake
  microphone playing single test-split digits 2 s apart, the time from the end of each word (when its
  last sample was captured) to its digit on the page.
- Size: what a visitor downloads, as stored and gzip-compressed (as static hosts usually send it).
Writes browser.json to --out. Needs Chromium (/usr/bin/chromium), npm and playwright.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from benchmarks.common import clips as fsdd_clips
from spoken_digits.apps.webexport import ORT_WEB, export_web
from spoken_digits.atomic import write_json
from spoken_digits.device import machine
from spoken_digits.recognize.load import load_predictor
from spoken_digits.recognize.strings import transcribe

CHROMIUM = "/usr/bin/chromium"
FAKE_MIC = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
TARGETS = {"download_mb": 15.0, "latency_ms": 500.0}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """`folder` served over HTTP on 127.0.0.1 (a static host, as the page would be deployed): its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def open_page(browser: Any, url: str) -> tuple[Any, float]:
    """A tab with the page loaded and its model ready, and the seconds that took."""
    tab = browser.new_page()
    started = time.perf_counter()
    tab.goto(url)
    tab.wait_for_function("document.getElementById('status').textContent === 'ready'", timeout=60_000)
    return tab, time.perf_counter() - started


TIMED = """async (y) => {
  const r = await window.spokenDigits.ready;
  const t = performance.now();
  const heard = await r.transcribe(Float32Array.from(y));
  return [heard.text, performance.now() - t];
}"""


def sizes(folder: Path) -> dict[str, float]:
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != "NOTICE.md"]
    raw = sum(p.stat().st_size for p in files)
    packed = sum(len(gzip.compress(p.read_bytes(), 6)) for p in files)
    return {"stored_mb": raw / 1e6, "gzip_mb": packed / 1e6}


def main(argv: list[str] | None = None) -> int:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--listen", type=float, default=20.0, help="seconds of fake-microphone listening")
    parser.add_argument("--data", help="FSDD folder (default: $FSDD_ROOT)")
    parser.add_argument("--out", type=Path, default=Path("docs/findings/runtime"))
    args = parser.parse_args(argv)
    test = [c for c in fsdd_clips(args.data) if c.take < 5][: args.files]  # takes 0-4: FSDD's official test split
    waves = [soxr.resample(sf.read(c.path, dtype="float32")[0], 8000, 16000).astype(np.float32) for c in test]
    python = [t.text for t in transcribe(load_predictor(), waves)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "page"
        export_web(folder)
        mic = Path(tmp) / "mic.wav"  # single test-split words, 2 s apart; the device loops it
        gap = np.zeros(16000 * 2, np.float32)
        sf.write(mic, np.concatenate([part for y in waves[::31][:8] for part in (gap, y)] + [gap]), 16000)
        result: dict[str, Any] = {"files": len(test), "onnxruntime_web": ORT_WEB, "download": sizes(folder)}
        with static_server(folder) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
            tab, result["cold_load_s"] = open_page(browser, url)
            answers = [tab.evaluate(TIMED, y.tolist()) for y in waves]
            browser.close()
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=[*FAKE_MIC, f"--use-file-for-fake-audio-capture={mic}"], headless=True
            )
            tab, _ = open_page(browser, url)
            tab.click("#listen")
            tab.wait_for_timeout(args.listen * 1000)
            latencies = tab.evaluate("window.spokenDigits.latencies")
            heard = tab.evaluate("window.spokenDigits.heard")
            browser.close()
    texts, times = [a[0] for a in answers], [a[1] for a in answers]
    truth = [str(c.digit) for c in test]
    result |= {
        "same_answers": sum(a == b for a, b in zip(texts, python, strict=True)),
        "accuracy_page": sum(a == t for a, t in zip(texts, truth, strict=True)) / len(test),
        "per_clip_ms": {"median": statistics.median(times), "p90": float(np.percentile(times, 90))},
        "microphone": {"words_heard": heard, "latency_ms": latencies,
                       "median_latency_ms": statistics.median(latencies) if latencies else None},
        "machine": machine("cpu") | {"browser": "Chromium (Debian), headless"},
    }
    result["met"] = {
        "download_mb": result["download"]["stored_mb"] <= TARGETS["download_mb"],
        "download_gzip_mb": result["download"]["gzip_mb"] <= TARGETS["download_mb"],
        "latency_ms": bool(latencies) and statistics.median(latencies) <= TARGETS["latency_ms"],
        "same_answers": result["same_answers"] == len(test),
    }
    result["targets"] = TARGETS
    write_json(args.out / "browser.json", result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
