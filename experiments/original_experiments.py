"""Re-run the original task's experiments on our data and record them in docs/experiments.md.

    python -m experiments.original_experiments [--limit 2000 --epochs 3]

The original compared batch sizes 8/16/32, SGD vs Adam, fine-tuning vs feature extraction
and several architectures (on ResNet50, a Colab GPU and 90k images). Here every run uses the
same seeded subset of the identity-disjoint manifests, the original's recipe (SGD lr 0.001
momentum 0.9, no augmentation, constant rate) unless the row says otherwise, and the
architectures are compared at one input size (80x96) by accuracy, size and CPU speed.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from facegender.training.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]

ORIGINAL = dict(optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=0.0, schedule="constant",
                label_smoothing=0.0, augment=0.0, batch_size=16, width=80, height=96)
RUNS = {  # name -> (question it answers, overrides of the original recipe)
    "batch 8": ("batch size", dict(model="mobilenet_v2", batch_size=8)),
    "batch 16": ("batch size", dict(model="mobilenet_v2")),
    "batch 32": ("batch size", dict(model="mobilenet_v2", batch_size=32)),
    "Adam lr 1e-3": ("optimizer", dict(model="mobilenet_v2", optimizer="adam")),
    "Adam lr 1e-4": ("optimizer", dict(model="mobilenet_v2", optimizer="adam", lr=1e-4)),
    "feature extraction": ("transfer mode", dict(model="mobilenet_v2", mode="feature")),
    "MobileNetV3-small (scratch)": ("architecture", dict(model="mobilenet_v3_small")),
    "ResNet50 (scratch)": ("architecture", dict(model="resnet50")),
    "facegender recipe (AdamW, cosine, augmentation)": ("recipe", dict(model="mobilenet_v2", **{
        "optimizer": "adamw", "weight_decay": 0.05, "schedule": "cosine", "label_smoothing": 0.1, "augment": 1.0,
        "batch_size": 64})),
}


def architecture_facts(name: str, width: int, height: int) -> dict:
    """Parameters, ONNX size and ONNX Runtime speed (batch 64, 2 threads) of an architecture."""
    import tempfile

    import numpy as np
    import onnxruntime as ort
    import torch

    from facegender.training import models
    net = models.get(name).build(pretrained=False).eval()
    path = Path(tempfile.mkdtemp()) / "m.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, height, width), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}}, opset_version=17, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.rand(64, 3, height, width).astype(np.float32)
    session.run(None, {"x": x})
    t, n = time.perf_counter(), 0
    while time.perf_counter() - t < 3:
        session.run(None, {"x": x})
        n += 64
    return {"params_m": sum(p.numel() for p in net.parameters()) / 1e6, "onnx_mb": path.stat().st_size / 1e6,
            "ort_img_s": n / (time.perf_counter() - t)}


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for name, r in results.items():
        epochs = [h["epoch"] for h in r["history"]]
        for ax, key in zip(axes.flat, ("train_loss", "val_loss", "train_acc", "val_acc")):
            ax.plot(epochs, [h[key] for h in r["history"]], "o-", label=name)
            ax.set_title(key.replace("_", " "))
            ax.set_xlabel("epoch")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=600, help="training images per run (validation: a quarter)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="run only these rows")
    a = ap.parse_args()
    out = ROOT / "docs" / "experiments"
    out.mkdir(parents=True, exist_ok=True)
    record = out / "results.json"
    results = json.loads(record.read_text()) if record.exists() else {}
    for name, (question, overrides) in RUNS.items():
        if a.only and name not in a.only:
            continue
        cfg = TrainConfig(**{**ORIGINAL, **overrides}, epochs=a.epochs, limit=a.limit, patience=a.epochs, workers=1,
                          train_manifest=str(ROOT / "manifests" / "train.csv"), val_manifest=str(ROOT / "manifests" / "val.csv"),
                          out_dir=str(ROOT / "runs" / "experiments" / name.replace(" ", "_")))
        t = time.time()
        summary = train(cfg)
        results[name] = {"question": question, "config": summary["config"], "history": summary["history"],
                         "best_val_acc": summary["best_val_acc"], "best_epoch": summary["best_epoch"],
                         "minutes": (time.time() - t) / 60, "train_images": summary["train_images"],
                         "val_images": summary["val_images"]}
        record.write_text(json.dumps(results, indent=2))
    arch = {m: architecture_facts(m, 80, 96) for m in sorted({r["config"]["model"] for r in results.values()})}
    plot(results, out / "learning_curves.png")
    lines = ["# The original's experiments, re-run", "",
             f"Each run: {a.limit} training images and a quarter as many validation images, drawn with one seed from the "
             "identity-disjoint manifests (`facegender prepare` on all of ../shared/data), "
             f"{a.epochs} epochs, 80x96 input, the original recipe (SGD lr 0.001, momentum 0.9, batch 16, no augmentation) "
             "unless the row says otherwise. Command: `python -m experiments.original_experiments`.", "",
             "| question | run | best val acc | at epoch | val loss there | minutes |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        best = r["history"][r["best_epoch"] - 1]
        lines.append(f"| {r['question']} | {name} | {r['best_val_acc']:.4f} | {r['best_epoch']} | "
                     f"{best['val_loss']:.4f} | {r['minutes']:.1f} |")
    lines += ["", "Architectures at 80x96 (ONNX Runtime, batch 64, this 2-core CPU):", "",
              "| architecture | parameters (M) | ONNX size (MB) | images/s |", "|---|---|---|---|"]
    lines += [f"| {m} | {f['params_m']:.2f} | {f['onnx_mb']:.1f} | {f['ort_img_s']:.0f} |" for m, f in arch.items()]
    lines += ["", "![learning curves](experiments/learning_curves.png)", ""]
    (ROOT / "docs" / "experiments.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
