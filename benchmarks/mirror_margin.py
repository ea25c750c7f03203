"""How wide the "unsure" band of `export --mirror-margin` should be: accuracy against the
share of faces that get a second (mirror-image) pass, on the validation split, beside the
plain model and the model averaging every face with its mirror.

    python -m benchmarks.mirror_margin CHECKPOINT_EXPORT.onnx [--out docs/mirror_margin]

The model (exported without a margin) runs once on each image and once on its mirror; each
margin is then simulated from those probabilities: a face whose P(female) lies within
`margin` of 0.5 takes the mean of both answers. Aligned frames (crop 1.0) and tight crops
(0.65) as in the evaluation; CelebA and UTKFace adults reported apart.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facegender import manifest
from facegender.classifier import Classifier
from facegender.evaluate import population_masks, predict_rows_with
from facegender.metrics import classification_metrics

ROOT = Path(__file__).resolve().parents[1]

MARGINS = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4]  # half-widths of the unsure band around P = 0.5


class Mirrored(Classifier):
    """The same model answering for each face's mirror image."""

    def predict(self, faces, flip=False):
        return super().predict(faces[:, :, ::-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="ONNX model exported without --mirror-margin")
    ap.add_argument("--manifest", default=str(ROOT / "manifests" / "val.csv"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "mirror_margin"), help="writes OUT.json and OUT.png")
    a = ap.parse_args()

    rows = manifest.read(a.manifest)
    groups = population_masks(rows)
    y = np.array([r.label for r in rows])
    model, mirrored = Classifier(a.model), Mirrored(a.model)
    if model.meta.get("mirror_margin"):
        raise SystemExit(f"{a.model} already has a mirror margin: give the plain export")
    table = []
    for crop in (1.0, 0.65):
        p, p_mirrored = predict_rows_with(rows, [model, mirrored], crop)[0]
        both = (p + p_mirrored) / 2
        variants = {"plain": (p, 0.0), "mirror, every face": (both, 1.0)}
        for m in MARGINS:
            unsure = np.abs(p - 0.5) < m
            variants[f"mirror when unsure, {m:.2f}"] = (np.where(unsure, both, p), unsure.mean())
        for name, (answer, second) in variants.items():
            row = {"crop": crop, "system": name, "second_passes": round(float(second), 4)}
            for g, mask in groups.items():
                m = classification_metrics(y[mask], answer[mask])
                row[g] = round(m["accuracy"], 4)
                row[g + " balanced"] = round(m["balanced_accuracy"], 4)
            table.append(row)
    print(f"{'crop':>4} {'system':28} {'2nd passes':>10} {'CelebA':>7} {'(bal.)':>7} {'UTK 18+':>8} {'(bal.)':>7}")
    for r in table:
        print(f"{r['crop']:>4} {r['system']:28} {r['second_passes']:>10.3f} {r['celeba']:>7.4f} {r['celeba balanced']:>7.4f} "
              f"{r['utkface 18+']:>8.4f} {r['utkface 18+ balanced']:>7.4f}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + ".json").write_text(json.dumps(table, indent=1))
    plot(table, Path(a.out + ".png"))


def plot(table: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, group in zip(axes, ("celeba", "utkface 18+")):
        for crop, colour in ((1.0, "tab:blue"), (0.65, "tab:orange")):
            rows = [r for r in table if r["crop"] == crop]
            pts = sorted((r["second_passes"], r[group]) for r in rows if r["system"] != "mirror, every face")
            ax.plot(*zip(*pts), "-", marker=".", color=colour, label=f"crop {crop}: mirror when unsure")
            every = next(r for r in rows if r["system"] == "mirror, every face")
            ax.plot([every["second_passes"]], [every[group]], "*", ms=10, color=colour, label=f"crop {crop}: mirror, every face")
        ax.set_xlabel("share of faces given a second (mirror) pass")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{group} validation")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
