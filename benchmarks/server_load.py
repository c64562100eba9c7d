"""Server under load: live WebSocket streams plus /api/predict uploads against one `spoken-digits serve`.

    python -m benchmarks.server_load --model MODEL.pt [--streams 50] [--requests 100] [--fsdd DIR] [--out FILE]

The server runs in a child process on 127.0.0.1 (its memory is its own); the streams run in a second
child, so the uploads' timing is not the load generator's. First `--requests` uploads of FSDD test-split
takes, one at a time, on the idle server; then `--streams` streams each play a digit string (FSDD
test-split takes 0.4 s apart) in a loop at 48 kHz in real time, 2048-sample frames as the page sends,
and the same uploads are timed again. Reports /api/predict p50/p99 idle and under load, the server's
peak resident memory (VmHWM) and resident memory while idle and under load, and how much audio the
streams got through (1.0 = real time). Bounded: every phase has a deadline (--timeout s).
`--server-src DIR --no-limits` runs another source tree's server (e.g. before the limits) the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

RATE, FRAME = 48_000, 2048  # what the page sends: the AudioContext's rate, ScriptProcessor frames
STRING = "4155550192"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_load", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a checkpoint (.pt) or .onnx to serve")
    parser.add_argument("--streams", type=int, default=50, help="concurrent WebSocket streams (default: 50)")
    parser.add_argument("--requests", type=int, default=100, help="uploads timed idle and under load (default: 100)")
    parser.add_argument("--fsdd", help="FSDD folder (default: $FSDD_ROOT)")
    parser.add_argument("--timeout", type=float, default=300, help="deadline of each phase in s (default: 300)")
    parser.add_argument("--server-src", type=Path, help="run the server from this source folder (PYTHONPATH)")
    parser.add_argument("--no-limits", action="store_true", help="pass no stream-limit options (an older server)")
    parser.add_argument("--note", default="", help="a line about the machine or the run, kept in the result")
    parser.add_argument("--out", type=Path, default=Path("docs/findings/server/load.json"), help="result file")
    parser.add_argument("--streams-child", nargs=3, metavar=("URL", "N", "AUDIO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.streams_child:
        url, n, audio = args.streams_child
        print(json.dumps(asyncio.run(play_streams(url, int(n), np.load(audio)))), flush=True)
        return
    from spoken_digits.atomic import write_json

    result = run(args)
    write_json(args.out, result)
    print(json.dumps(result, indent=1))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole measurement; the result as JSON-able data."""
    import httpx
    import soxr

    from spoken_digits.data import fsdd

    root = fsdd.locate(args.fsdd, download=False)
    uploads = [p.read_bytes() for p in sorted(root.glob("*_[0-4].wav"))]  # takes 0-4: the test split
    uploads = random.Random(0).sample(uploads, min(len(uploads), args.requests))
    string = soxr.resample(digit_string(root), 8000, RATE).astype("<f4")
    with tempfile.TemporaryDirectory() as tmp, Server(args) as server:
        audio = Path(tmp) / "string.npy"
        np.save(audio, string)
        with httpx.Client(base_url=server.url, timeout=args.timeout) as http:
            model = http.get("/api/model").json()
            timed(http, uploads[:10], args.timeout)  # warm-up, untimed
            idle, rss_idle = timed(http, uploads, args.timeout), server.rss()
            child = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.server_load", "--model", str(args.model),
                 "--streams-child", server.url, str(args.streams), str(audio)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                assert child.stdout is not None and child.stdin is not None
                ready = child.stdout.readline()  # every stream has connected
                if not ready.startswith("ready"):
                    raise SystemExit(f"the streams did not start: {ready!r}")
                time.sleep(3)  # the streams are under way
                peak_rss = [server.rss()]
                sampler = threading.Thread(target=sample, args=(server, peak_rss, child), daemon=True)
                sampler.start()
                loaded = timed(http, uploads, args.timeout)
                child.stdin.close()  # the streams end (and say what they heard)
                streams = json.loads(child.stdout.readline())
                vmhwm = server.peak()
            finally:
                child.kill() if child.poll() is None else None
    return {
        "what": f"{args.streams} WebSocket streams (48 kHz, real time) + {len(uploads)} /api/predict uploads in turn",
        "machine": machine(),
        "note": args.note,
        "model": {"path": str(args.model), "config": model["config"]["train"], "info": model["info"]},
        "server": {"src": str(args.server_src or "this tree"), "command": server.command[2:]},
        "predict_ms_idle": quantiles(idle),
        "predict_ms_under_load": quantiles(loaded),
        "p99_ratio": round(quantiles(loaded)["p99"] / quantiles(idle)["p99"], 2),
        "target": "p99 under load within 2x idle",
        "server_rss_mb": {"idle": rss_idle, "under_load_max": max(peak_rss), "peak_vmhwm": vmhwm},
        "streams": streams,
    }


def digit_string(root: Path) -> np.ndarray:
    """STRING said by FSDD test-split takes 0.4 s apart, 1 s of quiet after, at 8 kHz, with a noise floor."""
    import soundfile as sf

    speakers = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
    parts = [np.zeros(2400, np.float32)]
    for k, d in enumerate(STRING):
        parts += [sf.read(root / f"{d}_{speakers[k % 6]}_{k % 5}.wav", dtype="float32")[0], np.zeros(3200, np.float32)]
    y = np.concatenate([*parts, np.zeros(8000, np.float32)])
    return y + 0.0005 * np.random.default_rng(0).standard_normal(len(y)).astype(np.float32)


def timed(http: Any, uploads: list[bytes], timeout: float) -> list[float]:
    """Milliseconds each upload took, one at a time."""
    deadline, times = time.monotonic() + timeout, []
    for data in uploads:
        if time.monotonic() > deadline:
            raise SystemExit(f"uploads took over {timeout:g} s")
        started = time.perf_counter()
        response = http.post("/api/predict", content=data)
        times.append(1000 * (time.perf_counter() - started))
        if response.status_code not in (200, 422):
            raise SystemExit(f"/api/predict answered {response.status_code}: {response.text}")
    return times


def quantiles(ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"p50": round(q[49], 1), "p99": round(q[98], 1), "max": round(max(ms), 1), "n": len(ms)}


def sample(server: Server, seen: list[float], child: subprocess.Popen[str]) -> None:
    """Resident memory every 0.2 s while the streams run."""
    while child.poll() is None and not (child.stdin and child.stdin.closed):
        seen.append(server.rss())
        time.sleep(0.2)


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}; load average {load} at the end"


class Server:
    """`spoken-digits serve` in a child process on a free port of 127.0.0.1."""

    def __init__(self, args: argparse.Namespace) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.command = [sys.executable, "-m", "spoken_digits", "serve", str(args.model), "--port", str(port)]
        if not args.no_limits:
            self.command += ["--max-streams", str(args.streams)]
        self.env = {**os.environ, "PYTHONPATH": str(args.server_src or Path("src").resolve())}
        self.timeout = args.timeout

    def __enter__(self) -> Server:
        import httpx

        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.process = subprocess.Popen(self.command, env=self.env, **quiet)  # type: ignore[call-overload]
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        self.process.kill()
        raise SystemExit("the server did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)

    def _status(self, key: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)  # kB -> MB
        return float("nan")

    def rss(self) -> float:
        return self._status("VmRSS")

    def peak(self) -> float:
        return self._status("VmHWM")


async def play_streams(url: str, n: int, audio: np.ndarray) -> dict[str, Any]:
    """`n` streams playing `audio` in a loop in real time until stdin closes; what they got through."""
    from websockets.asyncio.client import connect

    stop = asyncio.Event()
    stats: list[dict[str, Any]] = []

    async def one(k: int, connected: asyncio.Event) -> None:
        at = random.Random(k).randrange(len(audio))  # streams start at different points of the string
        mine: dict[str, Any] = {"sent_s": 0.0, "words": 0, "close": "no answer to end within 30 s"}
        stats.append(mine)
        # no keep-alive pings, as a browser sends none (a stream held back by the server would miss the pong)
        async with connect(url.replace("http", "ws") + f"/api/listen?rate={RATE}", ping_interval=None) as ws:
            connected.set()

            async def read() -> None:
                async for message in ws:
                    mine["words"] += json.loads(message).get("type") == "word"

            reader = asyncio.create_task(read())
            started, sent = time.monotonic(), 0
            while not stop.is_set() and not reader.done():
                frame = np.take(audio, np.arange(at + sent, at + sent + FRAME), mode="wrap")
                await ws.send(frame.tobytes())
                sent += FRAME
                ahead = started + sent / RATE - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            mine["sent_s"], mine["elapsed_s"] = sent / RATE, time.monotonic() - started
            if not reader.done():
                await ws.send(json.dumps({"type": "end"}))
                await asyncio.wait_for(reader, 30)  # the frames still queued are heard first
            mine["close"] = [ws.close_code, ws.close_reason]

    events = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(one(k, e)) for k, e in enumerate(events)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 120)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    rt = [s["sent_s"] / s["elapsed_s"] for s in stats if s.get("elapsed_s")]
    closes: dict[str, int] = {}
    for s in stats:
        closes[str(s["close"])] = closes.get(str(s["close"]), 0) + 1
    return {
        "n": n,
        "audio_s_total": round(sum(s["sent_s"] for s in stats), 1),
        "real_time_share": {"min": round(min(rt), 3), "median": round(statistics.median(rt), 3)} if rt else {},
        "words_heard": sum(s["words"] for s in stats),
        "closes": closes,
    }


if __name__ == "__main__":
    main()
