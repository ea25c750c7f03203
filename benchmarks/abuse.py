"""The service under abuse (issue #27): each row of the issue's table against a started
`facegender serve` (default settings, its own process), printed beside its target.

    .venv/bin/python -m benchmarks.abuse [--slow-seconds 20] [--soak-seconds 60] [--json docs/abuse.json]

Rows: slowloris (connections sending a header line every 5 s), trickling bodies (a complete
head, then a byte every 5 s), 16 concurrent 30 MB uploads and 16 requests of two 12 MP JPEGs
with ?detect=true (the server's peak RSS against the documented bound), a schemathesis CLI run
with every check, and a soak of mixed requests. While slow clients are connected a probe asks
/healthz twice a second: its worst latency is the "normal client" figure.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from benchmarks.load import DATA, ROOT, RssSampler, cpu_model, crops, server
from facegender.service.settings import Settings

DEFAULTS = Settings()
BOUNDARY = "abuse0boundary"
MB = 2**20


def part(name: str, data: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + data + b"\r\n"


def multipart(files: list[tuple[str, bytes]]) -> bytes:
    return b"".join(part(n, d) for n, d in files) + f"--{BOUNDARY}--\r\n".encode()


def head(port: int, length: int, query: str = "") -> bytes:
    return (f"POST /v1/classify{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n").encode()


async def probe(url: str, stop: asyncio.Event) -> list[float]:
    """/healthz latencies (s), twice a second until `stop`; a failed probe counts as 99 s."""
    out = []
    async with httpx.AsyncClient(timeout=5) as h:
        while not stop.is_set():
            t = time.perf_counter()
            try:
                ok = (await h.get(url + "/healthz")).status_code == 200
            except httpx.HTTPError:
                ok = False
            out.append(time.perf_counter() - t if ok else 99.0)
            await asyncio.sleep(0.5)
    return out


async def slow_clients(url: str, port: int, n: int, first: bytes, step: bytes, every: float, seconds: float) -> dict:
    """`n` connections sending `first`, then `step` every `every` s: when the server closed each."""
    opened = time.monotonic()

    async def one() -> tuple[float | None, str]:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return 0.0, "refused"
        try:
            writer.write(first)
            while time.monotonic() - opened < seconds:
                try:
                    data = await asyncio.wait_for(reader.read(65536), every)
                    if data == b"" or data.startswith(b"HTTP/1.1 "):
                        return time.monotonic() - opened, data[9:12].decode() or "closed"
                except TimeoutError:
                    writer.write(step)
                    await writer.drain()
            return None, "open"  # still open when the row ended
        except OSError:
            return time.monotonic() - opened, "reset"
        finally:
            writer.close()

    stop = asyncio.Event()
    health = asyncio.create_task(probe(url, stop))
    closed = await asyncio.gather(*(one() for _ in range(n)))
    stop.set()
    probes = await health
    dropped = [t for t, _ in closed if t is not None]
    answers = {}
    for _, how in closed:
        answers[how] = answers.get(how, 0) + 1
    return {"connections": n, "dropped": len(dropped), "max_open_s": round(max(dropped, default=0.0), 1),
            "answers": answers,
            "healthz_max_s": round(max(probes), 3), "healthz_probes": len(probes)}


async def uploads(port: int, body: bytes, n: int, query: str = "") -> dict:
    """`n` concurrent raw uploads of `body`: status codes."""
    async def one() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head(port, len(body), query))
        for i in range(0, len(body), MB):
            writer.write(body[i:i + MB])
            await writer.drain()
        status = (await reader.readline()).split()[1]
        writer.close()
        return int(status)
    return {"statuses": sorted(set(await asyncio.gather(*(one() for _ in range(n)))))}


def memory_row(proc, port: int, body: bytes, n: int, query: str, decoded_extra: int) -> dict:
    rss = RssSampler(proc.pid)
    rss.start()
    time.sleep(0.3)
    rss.reset()
    before = rss.peak_kb * 1024
    t = time.perf_counter()
    out = asyncio.run(uploads(port, body, n, query))
    rss.stopped.set()
    peak = rss.peak_kb * 1024
    bodies = n * len(body)
    bound = before + 1.3 * bodies + decoded_extra
    return {**out, "seconds": round(time.perf_counter() - t, 1), "bodies_mb": round(bodies / MB),
            "rss_before_mb": round(before / MB), "peak_mb": round(peak / MB),
            "extra_over_bodies": round((peak - before) / bodies, 2), "bound_mb": round(bound / MB),
            "within_bound": peak <= bound}


def big_photo(megapixels: float = 12.0) -> bytes:
    """A 4000x3000 JPEG: a real portrait (CelebA aligned frame) scaled up into the frame."""
    src = sorted((DATA / "celeba-89x109" / "female").iterdir())[0]
    w = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    h = int(w * 3 / 4)
    img = Image.open(src).convert("RGB").resize((h * 178 // 218, h), Image.BILINEAR)
    canvas = Image.new("RGB", (w, h), (120, 110, 100))
    canvas.paste(img, ((w - img.width) // 2, 0))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def schemathesis_run(url: str, examples: int) -> dict:
    cmd = [str(Path(sys.executable).with_name("schemathesis")), "--no-color", "--config-file",
           str(ROOT / "deploy" / "schemathesis.toml"), "run", url + "/openapi.json", "--checks", "all",
           "--max-examples", str(examples), "--generation-deterministic"]
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as cwd:  # its crash cache (.schemathesis/) stays out of the repository
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=cwd,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    text = r.stdout + r.stderr
    cases = re.search(r"(\d+) generated", text)
    failures = re.search(r"(\d+) (?:distinct )?failures?", text)
    return {"exit": r.returncode, "generated": int(cases.group(1)) if cases else None,
            "failures": int(failures.group(1)) if failures and r.returncode else 0,
            "seconds": round(time.perf_counter() - t, 1), "tail": text.strip().splitlines()[-8:]}


async def soak(url: str, proc, seconds: float, clients: int) -> dict:
    """`clients` loops of 1-8 files a request (20% junk), 30% with ?detect=true."""
    faces = crops(200)
    photo = (ROOT / "docs" / "detect-example.png")
    photos = [("photo.png", photo.read_bytes())] if photo.exists() else faces[:1]
    rng, latencies, errors = random.Random(0), [], 0
    rss = RssSampler(proc.pid)
    start_mb, samples, started = rss.rss_kb() / 1024, [], time.perf_counter()

    async def client(h: httpx.AsyncClient):
        nonlocal errors
        while time.perf_counter() - started < seconds:
            detect = rng.random() < 0.3
            pool = photos if detect else faces
            files = [(f"junk{i}.jpg", os.urandom(rng.randint(10, 4000))) if rng.random() < 0.2 else rng.choice(pool)
                     for i in range(rng.randint(1, 8))]
            t = time.perf_counter()
            try:
                r = await h.post(url + "/v1/classify", params={"detect": "true"} if detect else None,
                                 files=[("files", (n, d, "image/jpeg")) for n, d in files])
                errors += r.status_code != 200 or len(r.json()["results"]) != len(files)
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - t)

    async def sample():
        while time.perf_counter() - started < seconds:
            samples.append(rss.rss_kb() / 1024)
            await asyncio.sleep(1)

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as h:
        await asyncio.gather(sample(), *(client(h) for _ in range(clients)))
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": errors, "req_s": round(len(latencies) / wall, 1),
            "p50_ms": round(float(np.percentile(ms, 50))), "p99_ms": round(float(np.percentile(ms, 99))),
            "rss_start_mb": round(start_mb), "rss_end_mb": round(samples[-1] if samples else 0),
            "rss_max_mb": round(max(samples, default=0)), "seconds": round(wall)}


def answers(row: dict) -> str:
    return "(" + ", ".join(f"{n} {how}" for how, n in sorted(row["answers"].items())) + ")"


def table(rows: dict, a) -> str:
    s, t, u, d, st, k = (rows[x] for x in ("slowloris", "trickle", "uploads", "detect", "schemathesis", "soak"))
    lines = [
        ("slowloris: %d conns, a header line / %g s" % (s["connections"], a.every),
         "healthz max %.2f s (%d probes); %d/%d dropped %s, last at %.1f s"
         % (s["healthz_max_s"], s["healthz_probes"], s["dropped"], s["connections"], answers(s), s["max_open_s"]),
         "healthz < 1 s; all dropped within 15 s",
         s["healthz_max_s"] < 1 and s["dropped"] == s["connections"] and s["max_open_s"] <= 15),
        ("trickling body: %d conns, 1 byte / %g s" % (t["connections"], a.every),
         "healthz max %.2f s (%d probes); %d/%d dropped %s, last at %.1f s"
         % (t["healthz_max_s"], t["healthz_probes"], t["dropped"], t["connections"], answers(t), t["max_open_s"]),
         "the same", t["healthz_max_s"] < 1 and t["dropped"] == t["connections"] and t["max_open_s"] <= 15),
        ("%d concurrent %d MB uploads" % (a.uploads, a.upload_mb),
         "statuses %s; RSS %d -> peak %d MB for %d MB of bodies (+%.2fx)"
         % (u["statuses"], u["rss_before_mb"], u["peak_mb"], u["bodies_mb"], u["extra_over_bodies"]),
         "peak <= before + 1.3 x bodies = %d MB" % u["bound_mb"], u["within_bound"] and u["statuses"] == [200]),
        ("%d requests x two 12 MP JPEGs, detect" % a.uploads,
         "statuses %s; RSS %d -> peak %d MB for %d MB of bodies"
         % (d["statuses"], d["rss_before_mb"], d["peak_mb"], d["bodies_mb"]),
         "peak <= before + 1.3 x bodies + workers x 2 x decoded = %d MB" % d["bound_mb"],
         d["within_bound"] and d["statuses"] == [200]),
        ("schemathesis %s, --checks all, -n %d" % (schemathesis_version(), a.examples),
         "%s generated, %d failures, exit %d (%.0f s)" % (st["generated"], st["failures"], st["exit"], st["seconds"]),
         "0 failures of any check", st["exit"] == 0),
        ("soak %d s, %d clients, 1-8 files (20%% junk), 30%% detect" % (k["seconds"], a.clients),
         "%d requests, %d errors, %.1f req/s, p50 %d ms, p99 %d ms; RSS %d -> %d MB (max %d)"
         % (k["requests"], k["errors"], k["req_s"], k["p50_ms"], k["p99_ms"], k["rss_start_mb"], k["rss_end_mb"],
            k["rss_max_mb"]), "0 errors; RSS flat", k["errors"] == 0),
    ]
    out = ["| tried | measured | target | met |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {'yes' if ok else 'NO'} |" for a, b, c, ok in lines]
    return "\n".join(out)


def schemathesis_version() -> str:
    from importlib.metadata import version
    return version("schemathesis")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slow-clients", type=int, default=200)
    ap.add_argument("--every", type=float, default=5.0, help="seconds between a slow client's sends")
    ap.add_argument("--slow-seconds", type=float, default=20.0, help="how long each slow-client row lasts")
    ap.add_argument("--uploads", type=int, default=16)
    ap.add_argument("--upload-mb", type=int, default=30)
    ap.add_argument("--examples", type=int, default=100, help="schemathesis --max-examples")
    ap.add_argument("--soak-seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--json", default=str(ROOT / "docs" / "abuse.json"))
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    face = sorted((DATA / "utkface" / "female").iterdir())[0].read_bytes()
    padded = multipart([("face.jpg", face + b"\0" * (a.upload_mb * MB - len(face) - 200))])  # JPEG, then padding
    photo = big_photo()
    rows = {}
    with server(0) as (url, proc):
        port = int(url.rsplit(":", 1)[1])
        print(f"server {url}, pid {proc.pid}", file=sys.stderr)
        rows["slowloris"] = asyncio.run(slow_clients(url, port, a.slow_clients, b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
                                                     b"X-Slow: 1\r\n", a.every, a.slow_seconds))
        print("slowloris", rows["slowloris"], file=sys.stderr)
        trickle_head = head(port, 100_000) + part("a.jpg", b"")[:-2]
        rows["trickle"] = asyncio.run(slow_clients(url, port, a.slow_clients, trickle_head, b"x", a.every, a.slow_seconds))
        print("trickle", rows["trickle"], file=sys.stderr)
        rows["uploads"] = memory_row(proc, port, padded, a.uploads, "", 0)
        print("uploads", rows["uploads"], file=sys.stderr)
        w, h = Image.open(io.BytesIO(photo)).size
        decoded = DEFAULTS.workers * 2 * w * h * 3  # a decode thread holds the image and a working copy
        rows["detect"] = memory_row(proc, port, multipart([("a.jpg", photo), ("b.jpg", photo)]), a.uploads,
                                    "?detect=true", decoded)
        print("detect", rows["detect"], file=sys.stderr)
        rows["schemathesis"] = schemathesis_run(url, a.examples)
        print("schemathesis", rows["schemathesis"], file=sys.stderr)
        rows["soak"] = asyncio.run(soak(url, proc, a.soak_seconds, a.clients))
        print("soak", rows["soak"], file=sys.stderr)
    machine = f"{cpu_model()}, {os.cpu_count()} cores" + (f"; {a.note}" if a.note else "")
    text = table(rows, a)
    print(f"facegender serve under abuse, default settings ({machine})\n\n{text}")
    Path(a.json).write_text(json.dumps({"machine": machine, "args": vars(a), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
