"""latentvar serve's resident memory under load, against the bound docs/serve.md states (issue 23).

    PYTHONPATH=src python bench/serve_memory.py [--sequential 300] [--clients 8] [--per-client 20]
                                                [--store-mb 64 1024] [--untuned]

For each ``--store-mb``: a server in a subprocess (the shipped photo model, uvicorn on a free loopback
port, as `latentvar serve` builds it: allocator tuned, memory trimmed after each model call), then

1. ``sequential`` photos one after the other, each with the page's views (POST /api/colorize with 3
   samples, then GET current, grey, overlay, segments and sample-0..2 as PNG);
2. ``clients`` threads at once, ``per-client`` photos each, the same requests;

and the server's peak resident memory (VmHWM) after each phase, its resident memory at the end, the
median colorize latency, and the bound of docs/serve.md: the server's peak after one warm-up photo (model,
libraries and one model call's working memory; the photo then deleted) + one more call's working memory
(that peak less the memory before any request: a background view may run beside the model worker) +
``--store-mb`` + the uploads held (each 256×256 PNG upload ~0.1 MB, at most ``clients`` at once). ``--untuned`` adds a run of each with glibc's default allocator and no
trim, for the memory they save. ``--speed ROUNDS``: only the allocator settings' speed cost, each in
its own worker process, rounds interleaved (`speed`).

Photos: the 8 bundled examples (held-out test photos), 256×256 crops at varying offsets so no two
requests carry the same pixels.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "src/latentvar/data/photo_examples"
VIEWS = ("current", "grey", "overlay", "segments", "sample-0", "sample-1", "sample-2")

SERVER = """
import socket, sys
import uvicorn
from latentvar.colorize import Colorizer
from latentvar.serve import ServeConfig, create_app
from latentvar.serve.memory import tune_allocator
store_mb, tuned = int(sys.argv[1]), sys.argv[2] == "1"
if tuned:
    tune_allocator()
app = create_app(Colorizer.load(), ServeConfig(store_bytes=store_mb << 20, trim_memory=tuned))
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
"""


WORKER = """
import io, sys, time
import numpy as np
import torch
from PIL import Image
from latentvar.colorize import Colorizer
from latentvar.serve import memory
from latentvar.serve.views import build_session, png_bytes
threshold, trim = int(sys.argv[1]), sys.argv[2] == "1"
if threshold:
    memory.tune_allocator(threshold)
torch.set_num_threads(1)
colorizer = Colorizer.load()
bodies = [bytes.fromhex(line) for line in open(sys.argv[3]).read().split()]
print("ready", flush=True)
for line in sys.stdin:
    t0 = time.perf_counter()
    with torch.inference_mode():
        for body in bodies:
            s = build_session(colorizer, body, "x", 3, 0, 10**8, 8)
            for view in ("current", "grey", "overlay", "sample-0", "sample-1", "sample-2"):
                png_bytes(s.image(view), 0)
            if trim:
                memory.trim()
    print(time.perf_counter() - t0, memory.rss_bytes()[1], flush=True)
"""
ALLOCATORS = [  # (name, mmap threshold (0: glibc's dynamic one), trim after each photo)
    ("glibc default", 0, False),
    ("trim only", 0, True),
    ("mmap ≥ 128 KiB + trim (serve)", 128 * 1024, True),
    ("mmap ≥ 1 MiB + trim", 1 << 20, True),
]


def speed(rounds: int, per_round: int) -> None:
    """The allocator settings' cost: the same photos through the same work (colorize, the page's views,
    PNG) in one worker process per setting, one thread each, rounds interleaved so the machine's load
    falls on all of them alike; median seconds per round and each process's peak RSS."""
    bodies = Path(tempfile.mkdtemp()) / "photos.hex"
    bodies.write_text("\n".join(b.hex() for b in photos(per_round)))
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(t), "1" if trim else "0", str(bodies)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        for _, t, trim in ALLOCATORS
    ]  # fmt: skip
    times: list[list[float]] = [[] for _ in procs]
    peaks = [0] * len(procs)
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for _ in range(rounds):
            for i, p in enumerate(procs):
                p.stdin.write("go\n")
                p.stdin.flush()
                took, peak = p.stdout.readline().split()
                times[i].append(float(took))
                peaks[i] = int(peak)
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=60)
        bodies.unlink()
        bodies.parent.rmdir()
    base = statistics.median(times[0])
    print(f"{per_round} photos (256×256, colorize + 6 views + PNG) per round, {rounds} rounds interleaved")
    print("| allocator | median per round | vs glibc default | peak RSS |")
    print("|---|---:|---:|---:|")
    for (name, _, _), t, peak in zip(ALLOCATORS, times, peaks, strict=True):
        m = statistics.median(t)
        print(f"| {name} | {m * 1000:.0f} ms | {m / base:.2f}× | {peak / 2**20:.0f} MiB |")


def photos(n: int) -> list[bytes]:
    sources = sorted(EXAMPLES.glob("*.jpg"))
    images = [Image.open(p).convert("RGB") for p in sources]
    out = []
    for i in range(n):
        im = images[i % len(images)]
        w, h = im.size
        side = min(w, h, 256)
        dx, dy = (i * 7) % (w - side + 1), (i * 5) % (h - side + 1)
        crop = im.crop((dx, dy, dx + side, dy + side)).resize((256, 256))
        buf = io.BytesIO()
        crop.save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def peak_rss(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return tuple(int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM"))


def one_photo(base: str, body: bytes, forget: bool = False) -> float:
    """The page's requests for one photo (and DELETE with ``forget``); returns the colorize latency (s)."""
    t0 = time.perf_counter()
    req = urllib.request.Request(
        base + "/api/colorize?samples=3", data=body, headers={"Content-Type": "image/png"}
    )
    with urllib.request.urlopen(req, timeout=600) as r:
        handle = json.load(r)["handle"]
    took = time.perf_counter() - t0
    for view in VIEWS:
        with urllib.request.urlopen(f"{base}/api/images/{handle}/{view}.png", timeout=600) as r:
            r.read()
    if forget:
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/images/{handle}", method="DELETE")).read()
    return took


def run(store_mb: int, tuned: bool, args) -> dict:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(store_mb), "1" if tuned else "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    try:
        base = proc.stdout.readline().strip()
        assert re.match(r"http://127\.0\.0\.1:\d+$", base), base
        for _ in range(600):  # at most 60 s for the server to answer
            try:
                urllib.request.urlopen(base + "/api/health", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        start_rss = peak_rss(proc.pid)[0]
        bodies = photos(args.sequential + args.clients * args.per_client + 1)
        warm_body, bodies = bodies[-1], bodies[:-1]
        one_photo(base, warm_body, forget=True)  # first-call allocations: model, libraries, one call's work
        warm_rss, warm_peak = peak_rss(proc.pid)
        t0 = time.perf_counter()
        sequential = [one_photo(base, b) for b in bodies[: args.sequential]]
        seq_s, (_, seq_peak) = time.perf_counter() - t0, peak_rss(proc.pid)
        rest = bodies[args.sequential :]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            concurrent = list(pool.map(lambda b: one_photo(base, b), rest))
        conc_s, (end_rss, peak) = time.perf_counter() - t0, peak_rss(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    uploads = args.clients * max(len(b) for b in bodies)
    one_call = warm_peak - start_rss  # a model call's working memory (and first-use allocations)
    bound = warm_peak + one_call + (store_mb << 20) + uploads
    return {
        "store_mb": store_mb,
        "tuned": tuned,
        "start_mb": start_rss / 2**20,
        "warm_peak_mb": warm_peak / 2**20,
        "warm_mb": warm_rss / 2**20,
        "sequential_peak_mb": seq_peak / 2**20,
        "peak_mb": peak / 2**20,
        "end_mb": end_rss / 2**20,
        "bound_mb": bound / 2**20,
        "within": peak <= bound,
        "sequential_s": seq_s,
        "concurrent_s": conc_s,
        "median_colorize_ms": 1000 * statistics.median(sequential),
        "median_concurrent_ms": 1000 * statistics.median(concurrent) if concurrent else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=20)
    parser.add_argument("--store-mb", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--untuned", action="store_true", help="also glibc's default allocator, no trim")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--speed", type=int, default=0, metavar="ROUNDS", help="only the allocators' cost")
    args = parser.parse_args()
    if args.speed:
        return speed(args.speed, per_round=8)
    rows = []
    for store_mb in args.store_mb:
        for tuned in (True, False) if args.untuned else (True,):
            rows.append(run(store_mb, tuned, args))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(
        f"{args.sequential} sequential photos, then {args.clients} clients × {args.per_client}; 256×256 PNG "
        "uploads, 3 samples, the page's 7 views each"
    )
    print(
        "| --store-mb | allocator | start / after warm-up | peak (sequential) | peak (all) | end | bound | within "
        "| colorize median (seq / conc) | phases |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|:-:|---:|---:|")
    for r in rows:
        print(
            f"| {r['store_mb']} | {'tuned + trim' if r['tuned'] else 'glibc default'} "
            f"| {r['start_mb']:.0f} / {r['warm_peak_mb']:.0f} MiB | {r['sequential_peak_mb']:.0f} MiB | {r['peak_mb']:.0f} MiB "
            f"| {r['end_mb']:.0f} MiB | {r['bound_mb']:.0f} MiB | {'yes' if r['within'] else 'NO'} "
            f"| {r['median_colorize_ms']:.0f} / {r['median_concurrent_ms']:.0f} ms "
            f"| {r['sequential_s']:.0f} s + {r['concurrent_s']:.0f} s |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
