"""Load on the HTTP service: N clients (asyncio + httpx) on loopback against `facegender serve`.

    python benchmarks/load.py [--clients 16] [--seconds 20] [--note "..."] > docs/load.txt

The server runs as its own process (as deployed); its RSS is sampled every 20 ms. Scenarios,
each bounded in time and in requests:
- crop: one real face crop per request (CelebA 89x109 and UTKFace 200x200 JPEGs);
- photo: one 640x480 JPEG per request with ?detect=true (a CelebA face placed in the frame);
- bulk crops: the same crops, 64 files per request, 2 clients: crop images/s over HTTP,
  against `process.py` on the same files (its own process, a worker per core).
Each line: requests, req/s, latency p50/p95/p99, errors (non-200 answers, failed
connections, per-file errors), the server's peak RSS during the scenario.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def crops(n: int) -> list[tuple[str, bytes]]:
    half = [sorted((DATA / src / cls).iterdir())[: n // 4] for src in ("celeba-89x109", "utkface") for cls in ("male", "female")]
    return [(p.name, p.read_bytes()) for group in half for p in group]


def photos(n: int) -> list[tuple[str, bytes]]:
    """640x480 JPEGs, each a CelebA aligned frame at full size (178x218) with its edges extended."""
    out = []
    for p in (sorted((DATA / "celeba-89x109" / "female").iterdir())[: n // 2]
              + sorted((DATA / "celeba-89x109" / "male").iterdir())[: n - n // 2]):
        a = np.asarray(Image.open(p).convert("RGB").resize((178, 218), Image.BILINEAR))
        top, left = (480 - 218) // 2, (640 - 178) // 2
        a = np.pad(a, ((top, 480 - 218 - top), (left, 640 - 178 - left), (0, 0)), mode="edge")
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "JPEG", quality=90)
        out.append((p.stem + "_640x480.jpg", buf.getvalue()))
    return out


class RssSampler(threading.Thread):
    """Peak resident memory of one process, from /proc (Linux), sampled every 20 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.stopped = pid, 0, threading.Event()

    def rss_kb(self) -> int:
        with contextlib.suppress(OSError):
            for line in open(f"/proc/{self.pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def run(self):
        while not self.stopped.wait(0.02):
            self.peak_kb = max(self.peak_kb, self.rss_kb())

    def reset(self) -> None:
        self.peak_kb = self.rss_kb()

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        with contextlib.suppress(OSError):
            fields = open(f"/proc/{self.pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return 0.0


@contextlib.contextmanager
def server(workers: int):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "facegender.cli", "serve", "--port", str(port)] + (
        ["--workers", str(workers)] if workers else [])
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                sys.exit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(15)


async def scenario(url: str, inputs: list, clients: int, seconds: float, max_requests: int, per_request: int = 1,
                   detect: bool = False) -> dict:
    """`clients` loops, each posting the next `per_request` inputs until time or requests run out."""
    latencies, errors, files_done = [], 0, 0
    next_input, started = [0], time.perf_counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(h: httpx.AsyncClient):
        nonlocal errors, files_done
        while time.perf_counter() - started < seconds and len(latencies) < max_requests:
            k = next_input[0]
            next_input[0] += per_request
            batch = [inputs[(k + i) % len(inputs)] for i in range(per_request)]
            t = time.perf_counter()
            try:
                r = await h.post(url + "/v1/classify", params={"detect": "true"} if detect else None,
                                 files=[("files", (name, data, "image/jpeg")) for name, data in batch])
                ok = r.status_code == 200
                results = r.json()["results"] if ok else []
                errors += (not ok) + sum("error" in rec for rec in results)
                files_done += len(results)
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - t)

    async with httpx.AsyncClient(timeout=60, limits=limits) as h:
        await asyncio.gather(*(client(h) for _ in range(clients)))
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"requests": len(latencies), "req_s": len(latencies) / wall, "files_s": files_done / wall,
            "p50": np.percentile(ms, 50), "p95": np.percentile(ms, 95), "p99": np.percentile(ms, 99), "errors": errors}


def process_speed(inputs: list) -> float:
    """images/s of `process.py` (its own process, from start) on the same files."""
    with tempfile.TemporaryDirectory() as d:
        for name, data in inputs:
            Path(d, name).write_bytes(data)
        t = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "process.py"), d, "-q", "-o", str(Path(d, "out.json"))],
                       check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        return len(inputs) / (time.perf_counter() - t)


def cpu_model() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20.0, help="per scenario, at most")
    ap.add_argument("--max-requests", type=int, default=20000, help="per scenario, at most")
    ap.add_argument("--crops", type=int, default=400, help="distinct face crops (cycled)")
    ap.add_argument("--photos", type=int, default=100, help="distinct 640x480 photos (cycled)")
    ap.add_argument("--workers", type=int, default=0, help="server threads (default: one per core)")
    ap.add_argument("--note", default="", help="a line about the machine's other load, printed with the results")
    a = ap.parse_args()
    crop_inputs, photo_inputs = crops(a.crops), photos(a.photos)
    print(f"facegender serve under load: {os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}, "
          f"{a.clients} clients on loopback, {a.seconds:g} s per scenario at most")
    if a.note:
        print(f"note: {a.note}")
    rows = []
    with server(a.workers) as (url, proc):
        rss = RssSampler(proc.pid)
        rss.start()
        asyncio.run(scenario(url, crop_inputs, 2, 2, 50))  # warm-up: connections, first decodes
        plan = [("crop, 1 per request", crop_inputs, a.clients, 1, False),
                ("photo 640x480 detect=true", photo_inputs, a.clients, 1, True),
                ("crops, 64 per request", crop_inputs, 2, 64, False)]
        for name, inputs, clients, per_request, detect in plan:
            rss.reset()
            cpu, own = rss.cpu_seconds(), time.process_time()
            r = asyncio.run(scenario(url, inputs, clients, a.seconds, a.max_requests, per_request, detect))
            r["server_cpu_ms"] = 1000 * (rss.cpu_seconds() - cpu) / max(1, r["requests"])
            r["client_cpu_ms"] = 1000 * (time.process_time() - own) / max(1, r["requests"])
            rows.append((name, clients, r, rss.peak_kb / 1024))
        rss.stopped.set()
    print()
    print("| scenario | clients | requests | req/s | images/s | p50 ms | p95 ms | p99 ms | errors | server peak RSS MB | "
          "CPU ms/request: server, clients |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, clients, r, peak in rows:
        print(f"| {name} | {clients} | {r['requests']} | {r['req_s']:.1f} | {r['files_s']:.1f} | {r['p50']:.0f} | "
              f"{r['p95']:.0f} | {r['p99']:.0f} | {r['errors']} | {peak:.0f} | "
              f"{r['server_cpu_ms']:.1f}, {r['client_cpu_ms']:.1f} |")
    local = process_speed(crop_inputs)
    http = rows[-1][2]["files_s"]
    print()
    print(f"crop images/s, the same {len(crop_inputs)} files: HTTP (64 per request, 2 clients) {http:.0f}, "
          f"process.py (from process start) {local:.0f}: HTTP at {http / local:.2f}x")


if __name__ == "__main__":
    main()
