"""Classifier-only speed on this CPU: the choices behind the shipped model, side by side.

    python benchmarks/model_speed.py [--seconds 3]

Rows: the shipped ONNX model under ONNX Runtime at several batch sizes, its int8-quantized
copy (shipped; `process --precision auto` takes it only on CPUs with VNNI), the same network
in PyTorch (plain and channels_last), and ResNet50 at 224 px (the
original's network) in ONNX Runtime. Inputs are 256 real validation faces (the shipped
graph's second, mirror-image pass depends on how sure it is of each face); ONNX Runtime
with all cores, and with one thread as each `process` worker runs it.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from facegender import manifest  # noqa: E402
from facegender.classifier import DEFAULT_MODEL, Classifier  # noqa: E402
from facegender.images import load_rgb  # noqa: E402

SAMPLE = ROOT / "tests" / "data" / "val_sample_1000.csv"


def rate(fn, batch: int, seconds: float) -> float:
    fn()
    t, n = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
        fn()
        n += batch
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    import onnxruntime as ort
    import torch

    from facegender.training import models

    clf = Classifier(DEFAULT_MODEL)
    faces = clf.pre.normalize(np.stack([clf.pre.fit(load_rgb(r.path)) for r in manifest.read(SAMPLE)[:256]]))
    rows = []
    for batch in (1, 16, 64, 256):
        x = faces[:batch]
        rows.append((f"shipped model, ONNX Runtime, batch {batch}",
                     rate(lambda: clf.session.run(None, {clf.input_name: x}), batch, a.seconds)))
    one = Classifier(DEFAULT_MODEL, threads=1)
    rows.append(("shipped model, ONNX Runtime 1 thread, batch 64",
                 rate(lambda: one.session.run(None, {one.input_name: faces[:64]}), 64, a.seconds)))
    qs = Classifier(precision="int8")  # the shipped static-int8 copy (auto takes it only with VNNI)
    rows.append(("shipped model int8 (static QDQ), ONNX Runtime, batch 64",
                 rate(lambda: qs.session.run(None, {qs.input_name: faces[:64]}), 64, a.seconds)))
    q1 = Classifier(precision="int8", threads=1)
    rows.append(("shipped model int8, ONNX Runtime 1 thread, batch 64",
                 rate(lambda: q1.session.run(None, {q1.input_name: faces[:64]}), 64, a.seconds)))
    net = models.get(clf.meta["architecture"]).build(pretrained=False).eval()
    torch.set_num_threads(2)
    with torch.no_grad():
        x = torch.from_numpy(faces[:64])
        rows.append(("same network, PyTorch eager, batch 64", rate(lambda: net(x), 64, a.seconds)))
        cl, xc = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        rows.append(("same network, PyTorch channels_last, batch 64", rate(lambda: cl(xc), 64, a.seconds)))
    resnet = models.get("resnet50").build(pretrained=False).eval()
    path = Path(tempfile.mkdtemp()) / "r50.onnx"
    torch.onnx.export(resnet, torch.zeros(1, 3, 224, 224), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}}, opset_version=17, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.rand(16, 3, 224, 224).astype(np.float32)
    rows.append(("original: ResNet50 224px, ONNX Runtime, batch 16", rate(lambda: session.run(None, {"x": x}), 16, a.seconds)))
    print(f"{'classifier only (real faces, decoded beforehand)':58} {'img/s':>8}")
    for name, r in rows:
        print(f"{name:58} {r:>8.1f}")


if __name__ == "__main__":
    main()
