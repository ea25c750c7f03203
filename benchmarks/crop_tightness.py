"""Accuracy against crop tightness: how a model holds up from tight face crops to loose frames.

    python -m benchmarks.crop_tightness [MODEL.onnx ...] [--out docs/crop_tightness]

Each validation image is cut to a centre box of a fraction of its frame (1.0: CelebA's whole
aligned frame, face in the middle ~60%; 0.65: close to the original task's tight crops;
UTKFace frames are already tight, so their fractions are tighter still) and classified.
CelebA and UTKFace adults are reported apart; several models run side by side (default: the
shipped one). Prints a table; writes JSON and a plot.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facegender.classifier import DEFAULT_MODEL, Classifier
from facegender.evaluate import benchmark_samples, predict_rows
from facegender.metrics import classification_metrics

ROOT = Path(__file__).resolve().parents[1]

FRACTIONS = [1.0, 0.9, 0.8, 0.7, 0.65, 0.6, 0.55, 0.5]  # share of the frame's side kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", default=[str(DEFAULT_MODEL)])
    ap.add_argument("--manifest", default="manifests/val.csv")
    ap.add_argument("--per-group", type=int, default=100000, help="at most this many images per group")
    ap.add_argument("--fractions", type=float, nargs="+", default=FRACTIONS)
    ap.add_argument("--out", default="docs/crop_tightness", help="writes OUT.json and OUT.png")
    a = ap.parse_args()

    groups = benchmark_samples(a.manifest, a.per_group)
    results = {}  # model name -> group -> [accuracy per fraction]
    for model in a.models:
        clf = Classifier(model)
        name = Path(model).stem
        results[name] = {}
        for group, rows in groups.items():
            labels = np.array([r.label for r in rows])
            results[name][group] = [round(classification_metrics(labels, predict_rows(rows, clf, crop=f)[0])["accuracy"], 4)
                                    for f in a.fractions]

    header = f"{'model':28s} {'group':12s} " + " ".join(f"{f:>6.2f}" for f in a.fractions)
    print(header)
    for name, by_group in results.items():
        for group, accs in by_group.items():
            print(f"{name[:28]:28s} {group:12s} " + " ".join(f"{x:6.4f}" for x in accs))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(
        {"fractions": a.fractions, "images": {g: len(r) for g, r in groups.items()}, "accuracy": results}, indent=2))
    plot(results, a.fractions, out.with_suffix(".png"))


def plot(results: dict, fractions: list[float], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(next(iter(results.values())))
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.6), squeeze=False)
    for ax, group in zip(axes[0], groups):
        for name, by_group in results.items():
            ax.plot(fractions, by_group[group], "o-", label=name)
        ax.set_title(group)
        ax.set_xlabel("centre crop (share of the frame's side)")
        ax.set_ylabel("accuracy")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
