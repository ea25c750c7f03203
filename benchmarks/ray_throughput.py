"""Local engine vs `--engine ray` on the same folder of crops, side by side, with Ray's overhead.

    python -m benchmarks.ray_throughput                  # 4,000 crops
    python -m benchmarks.ray_throughput --images 10000 --out docs/ray_throughput.json

Each run is its own process, end to end (list, read, decode, classify, write), on a local
Ray started with this machine's cores. Ray's fixed cost is split out: start-up (ray.init) and
a run on a 16-crop folder (actor start, planning); its per-image cost is the difference of
the large and the small run, which is what more cores or nodes divide. Labels are compared
with the local engine's, file for file.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.throughput import build_folder, timed
from facegender import manifest

ROOT = Path(__file__).resolve().parents[1]

SMALL = 16


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def run_ray(folder: Path, work: Path, fmt: str) -> dict:
    out = work / (f"ray_{fmt}" if fmt != "json" else "ray.json")
    cmd = [sys.executable, "-m", "facegender.cli", "process", str(folder), "--engine", "ray", "-q", "-o", str(out),
           "--format", fmt]
    if fmt == "json":
        cmd += ["--details", str(work / "ray_details.json")]
    r = timed(cmd, work)
    if fmt == "json":
        seconds = json.loads((work / "ray_details.json").read_text())["summary"]["seconds"]
        r.update(start=seconds.get("ray_start", 0.0), run=seconds.get("ray_run", 0.0),
                 results=json.loads(out.read_text()))
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_manifest = ROOT / "manifests" / "val.csv"
    sample = ROOT / "tests" / "data" / "val_sample_1000.csv"
    ap.add_argument("--manifest", default=str(default_manifest if default_manifest.exists() else sample))
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--out", help="write the table as JSON here")
    a = ap.parse_args()

    rows_in = manifest.read(a.manifest)
    env_note = os.environ.get("OMP_NUM_THREADS")
    with tempfile.TemporaryDirectory(prefix="fg-ray-bench-") as tmp:  # the crops and results: ~40 MB per 4,000 images
        work = Path(tmp)
        build_folder(rows_in, work / "faces", a.images)
        build_folder(rows_in, work / "small", SMALL)
        local = timed([sys.executable, str(ROOT / "process.py"), str(work / "faces"), "-q", "-o", str(work / "local.json")], work)
        local_results = json.loads((work / "local.json").read_text())
        big = run_ray(work / "faces", work, "json")
        small = run_ray(work / "small", work, "json")
        table = run_ray(work / "faces", work, "parquet")
    agree = sum(big["results"].get(k) == v for k, v in local_results.items()) / len(local_results)

    per_image = (big["run"] - small["run"]) / (a.images - SMALL)
    rows = [
        dict(system="local engine (process.py, a process per core)", images=a.images, seconds=local["seconds"],
             peak_mb=local["peak_mb"]),
        dict(system="ray engine, process_results.json", images=a.images, seconds=big["seconds"], peak_mb=big["peak_mb"],
             start=big["start"], run=big["run"]),
        dict(system=f"ray engine, {SMALL} crops (fixed cost of a run)", images=SMALL, seconds=small["seconds"],
             peak_mb=small["peak_mb"], start=small["start"], run=small["run"]),
        dict(system="ray engine, --format parquet", images=a.images, seconds=table["seconds"], peak_mb=table["peak_mb"]),
    ]
    for row in rows:
        row["images_per_s"] = row["images"] / row["seconds"]
    cpu = cpu_model()
    print(f"\nmachine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, "
          f"local Ray on {os.cpu_count()} CPUs, OMP_NUM_THREADS={env_note}")
    print(f"{'system':48} {'images':>7} {'wall s':>7} {'img/s':>7} {'ray start s':>11} {'ray run s':>9} {'peak MB':>8}")
    for row in rows:
        start = f"{row['start']:.1f}" if "start" in row else "-"
        run = f"{row['run']:.1f}" if "run" in row else "-"
        print(f"{row['system']:48} {row['images']:>7} {row['seconds']:>7.1f} {row['images_per_s']:>7.1f} {start:>11} "
              f"{run:>9} {row['peak_mb']:>8.0f}")
    print(f"ray per-image cost past the fixed part: {per_image * 1000:.2f} ms ({1 / per_image:.0f} img/s); "
          f"labels equal to the local engine's: {agree:.4f}")
    if a.out:
        Path(a.out).write_text(json.dumps({"machine": {"cores": os.cpu_count(), "cpu": cpu}, "rows": rows,
                                           "ray_ms_per_image": per_image * 1000, "labels_equal": agree}, indent=2))


if __name__ == "__main__":
    main()
